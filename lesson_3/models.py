"""Lesson 3's models and callbacks that more than one page uses, defined once, on the page that
teaches them, and handed to the other pages from here (`labkit.pages`: the page marks each one
`# @save`; only the page's imports and definitions run, never the rest of the page):

- `fashion_mlp`: seed 001's 300-100 classifier, taught by `fashion_classifier/train_mnist.py`,
  trained again by `tensorboard/` and `tuning/train_lr_finder.py`;
- `regression_mlp`: the housing regression MLP, taught by `regression/train_regression.py`,
  trained again by `callbacks/`, `tensorboard/` and `tuning/`;
- `ValTrainRatio` and `best_model_check`: the custom callback and the check of what the callbacks
  promised, taught by `callbacks/train_with_callbacks.py`, used again by `deep_mlp/`;
- `searched_mlp`: the regression MLP of any depth and width that both searches of `tuning/`
  draw, taught by `tuning/train_random_search.py`, built again by `tuning/train_keras_tuner.py`.
"""

from labkit.pages import saved_definitions

fashion_mlp = saved_definitions("lesson_3/fashion_classifier/train_mnist.py").fashion_mlp
regression_mlp = saved_definitions("lesson_3/regression/train_regression.py").regression_mlp
_callbacks_page = saved_definitions("lesson_3/callbacks/train_with_callbacks.py")
ValTrainRatio = _callbacks_page.ValTrainRatio
best_model_check = _callbacks_page.best_model_check
searched_mlp = saved_definitions("lesson_3/tuning/train_random_search.py").searched_mlp
