"""Lesson 1's notebooks, as cells (see labkit/notebooks.py). After editing, run:

    python lesson_1/make_notebooks.py
"""

from pathlib import Path

from labkit.notebooks import write_notebooks

LESSON = Path(__file__).resolve().parent

EXERCISE_A = [
("md", """
# Lesson 1, Exercise A: train your first convolutional network

This notebook drives the same code as `train_mnist.py` in this folder: it imports the script's
functions instead of copying them, so the two can never drift apart.

* **Run it quick** (a small slice, two short epochs, seconds): set `LAB_QUICK=1` before starting
  Jupyter, or pass `["--quick"]` to `cli.parse` below.
* **Run it in full** (2,000 steps, about two minutes on a laptop CPU): leave quick mode off.

While it trains, you can watch it live in TensorBoard: the run folder is printed below.
"""),
("code", """
import labkit  # first: keeps TensorFlow's start-up chatter out of the notebook
import matplotlib.pyplot as plt

from labkit import cli
from labkit.tblogs import read_scalars, curve
from train_mnist import EDGE_SHIFTS, build_model, make_parser, misclassified_at_edge, train
"""),
("md", """
## 1. The network

One convolutional layer (32 filters of 5x5, ReLU, 2x2 max-pooling) and two fully connected
layers. Most of the weights sit in `fc1`: count them in the summary.
"""),
("code", """
build_model().summary()
"""),
("md", """
## 2. Train it

`cli.parse` applies the same checks and defaults as the command line. An empty list means the
lesson's defaults: Adam at 1e-4, batches of 100, 10 epochs of 200 steps.
"""),
("code", """
args = cli.parse(make_parser(), [])
print("quick mode:", args.quick, "| epochs:", args.epochs, "| steps per epoch:", args.steps_per_epoch)
session = train(args)
"""),
("md", """
## 3. Read the curves back from TensorBoard's files

`read_scalars` returns every point TensorBoard stored. `accuracy_by_step` is the validation
accuracy measured every 20 steps; `epoch_accuracy` is Keras's one-point-per-epoch summary.
"""),
("code", """
scalars = read_scalars(session.run_dir)
by_step = curve(scalars, "validation", "accuracy_by_step")
first_90 = by_step[by_step.iloc[:, 0] >= 0.9].index.min()
print("first step with validation accuracy >= 90%:", first_90)

fig, ax = plt.subplots(figsize=(7, 4))
by_step.plot(ax=ax, legend=False, marker=".")
ax.axhline(0.9, color="grey", linestyle="--", linewidth=1)
ax.set(xlabel="training step", ylabel="validation accuracy", title="Accuracy climbs fast, then slowly")
plt.show()
"""),
("md", """
## 4. Beyond the lesson: digits drawn at the edge

MNIST digits are centred, with a 4-pixel margin. The original lesson asked you to draw a digit
near the edge of a web canvas and watch the network fail. Here we do it offline: slide the test
digits to the right and score the same trained network again.
"""),
("code", """
shifted = session.record.data["extra"]["edge_shift_accuracy"]
for pixels, accuracy in shifted.items():
    print(f"shift {int(pixels):2d} px -> accuracy {accuracy:.3f}")
"""),
("code", """
data = session.data
examples = misclassified_at_edge(session.model, data.x_test, data.y_test, pixels=max(EDGE_SHIFTS))
fig, axes = plt.subplots(1, max(len(examples), 1), figsize=(2 * max(len(examples), 1), 2.4))
for ax, (image, truth, guess) in zip(list(getattr(axes, "flat", [axes])), examples):
    ax.imshow(image, cmap="gray_r")
    ax.set_title(f"true {truth}, said {guess}")
    ax.axis("off")
plt.suptitle(f"Correct when centred, wrong after a {max(EDGE_SHIFTS)}-pixel shift")
plt.show()
"""),
("md", """
## Questions to explore

1. At which step does validation accuracy first pass 90%? The original lesson saw about 200 steps.
2. The network learned nothing about the right-hand columns of the canvas. Why does a 2-pixel
   shift hurt so much less than an 8-pixel one?
3. How would you make the network robust to shifts? (Hint: show it shifted digits while training.)
"""),
]

ACTIVITY_2 = [
("md", """
# Lesson 1, Activity 2: explore a trained network, then change how it learns

Part 1 needs no training at all: the course ships a few runs recorded with this folder's
`train_mnist.py`. Part 2 trains your own variants and lays them over the recorded ones.

The same runs open in TensorBoard with:

```
tensorboard --logdir lesson_1/activity_2/recorded_runs
```
"""),
("code", """
import labkit  # first: keeps TensorFlow's start-up chatter out of the notebook
import matplotlib.pyplot as plt
import pandas as pd

from labkit import cli
from labkit.runs import find_runs, read_run
from labkit.tblogs import curve, read_scalars
from train_mnist import RECORDED_RUNS, make_parser, train
"""),
("md", """
## 1. The recorded runs

Each run folder holds TensorBoard event files and a `run.json` with its settings and results.
"""),
("code", """
def runs_table(root):
    rows = []
    for run_dir in find_runs(root):
        record = read_run(run_dir)
        hp = record["hparams"]
        rows.append({"run": run_dir.name, "learning_rate": hp["learning_rate"],
                     "steps": hp["epochs"] * hp["steps_per_epoch"],
                     "data": record["dataset"]["name"]
                             + (f" (for {record['dataset']['substitute_for']})" if record["dataset"]["substitute_for"] else ""),
                     "val_accuracy": record["metrics"]["validation"].get("accuracy"),
                     "test_accuracy": record["metrics"]["test"].get("accuracy")})
    return pd.DataFrame(rows)

recorded = runs_table(RECORDED_RUNS)
recorded
"""),
("code", """
def plot_accuracy_by_step(scalars, title):
    curves = curve(scalars, "validation", "accuracy_by_step")
    fig, ax = plt.subplots(figsize=(8, 4))
    for run in curves.columns:
        series = curves[run].dropna()
        ax.plot(series.index, series.values, marker=".", label=run.split("/")[-1])
    ax.axhline(0.9, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="training step", ylabel="validation accuracy", ylim=(0, 1.02), title=title)
    ax.legend(fontsize="small")
    plt.show()
    return curves

recorded_scalars = read_scalars(RECORDED_RUNS)
recorded_curves = plot_accuracy_by_step(recorded_scalars, "Recorded runs: one network, three learning rates")
print("runs read back from the event files:", len(recorded_curves.columns))
"""),
("md", """
**What to look for.** With a learning rate of 1e-4 the network passes 90% within the first few
hundred steps and then creeps upward. At 0.1 Adam's steps are far too large: the loss explodes
in the first steps and accuracy stays at chance (about 10%) however long it trains.
"""),
("md", """
## 2. Your own variants

`--sweep` takes `LEARNING_RATE@STEPS` pairs. Each becomes its own run folder beside the others.
In quick mode (`LAB_QUICK=1`) each variant is cut to two short epochs.
"""),
("code", """
args = cli.parse(make_parser(), ["--sweep", "1e-4@2000,1e-2@2000,1e-1@100"])
last_session = train(args)
mine = read_scalars(last_session.run_dir.parent)
my_curves = plot_accuracy_by_step(mine, "Your runs")
runs_table(last_session.run_dir.parent)
"""),
("md", """
## Questions to explore

1. Multiply the learning rate by 10 a few times, starting from 1e-4. Where does training stop
   improving, and where does it break down completely?
2. Can a larger learning rate with fewer steps match 1e-4 over 2,000 steps?
3. Between step 1,000 and step 2,000 accuracy still rises, but slowly. Would 20,000 steps reach
   100%? What does the gap between training and validation accuracy tell you?
"""),
]

NOTEBOOKS = {"exercise_a": EXERCISE_A, "activity_2": ACTIVITY_2}


if __name__ == "__main__":
    write_notebooks(LESSON, NOTEBOOKS)
