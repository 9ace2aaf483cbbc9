"""Lesson 1's network, defined once on the page that teaches it, Exercise A's
(`exercise_a/train_mnist.py` marks it `# @save`), and handed from here to Activity 2, which trains
it again with other learning rates and lengths. Only that page's imports and definitions run.
"""

from labkit.pages import saved_definitions

lesson1_cnn = saved_definitions("lesson_1/exercise_a/train_mnist.py").lesson1_cnn
