# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 1, Activity 2: explore a trained network, then change how it learns
#
# Part 1 needs no training at all: the course ships a few runs recorded with this folder's
# `train_mnist.py`. Part 2 trains your own variants and lays them over the recorded ones.
#
# The same runs open in TensorBoard with:
#
# ```
# python scripts/lab.py tensorboard demo_runs/lesson_1
# ```

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from labkit import cli
from labkit.runs import find_runs, read_run
from labkit.tblogs import curve, read_scalars
from lesson_1.activity_2.train_mnist import RECORDED_RUNS, make_parser, train

# %% [markdown]
# ## 1. The recorded runs
#
# Each run folder holds TensorBoard event files and a `run.json` with its settings and results.


# %%
def runs_table(root):
    rows = []
    for run_dir in find_runs(root):
        record = read_run(run_dir)
        hp = record["hparams"]
        dataset = record["dataset"]
        rows.append(
            {
                "run": run_dir.name,
                "learning_rate": hp["learning_rate"],
                "steps": hp["epochs"] * hp["steps_per_epoch"],
                "data": dataset["name"] + (f" (for {dataset['substitute_for']})" if dataset["substitute_for"] else ""),
                "val_accuracy": record["metrics"]["validation"].get("accuracy"),
                "test_accuracy": record["metrics"]["test"].get("accuracy"),
            }
        )
    return pd.DataFrame(rows)


recorded = runs_table(RECORDED_RUNS)
display(recorded)


# %%
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

# %% [markdown]
# **What to look for.** With a learning rate of 1e-4 the network passes 90% within the first few
# hundred steps and then creeps upward. At 0.1 Adam's steps are far too large: the loss explodes
# in the first steps and accuracy stays at chance (about 10%) however long it trains.

# %% [markdown]
# ## 2. Your own variants
#
# `--sweep` takes `LEARNING_RATE@STEPS` pairs. Each becomes its own run folder beside the others.
# In quick mode (`LAB_QUICK=1`) each variant is cut to two short epochs.

# %%
args = cli.parse(make_parser(), ["--sweep", "1e-4@2000,1e-2@2000,1e-1@100"])

# %% [markdown]
# Open TensorBoard on this activity's runs folder (`runs/lesson_1/activity_2` unless you set
# `--logdir` or `LAB_RUNS_DIR`) before the sweep starts, and watch each variant's curves appear
# beside the others. The page refreshes itself every 30 seconds; the reload button at its top
# right refreshes it at once.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_1" / "activity_2"
# %tensorboard --logdir "$runs_folder"

# %%
runs = train(args)
mine = read_scalars(runs.last.run_dir.parent)
my_curves = plot_accuracy_by_step(mine, "Your runs")
display(runs_table(runs.last.run_dir.parent))

# %% [markdown]
# ## Questions to explore
#
# 1. Multiply the learning rate by 10 a few times, starting from 1e-4. Where does training stop
#    improving, and where does it break down completely?
# 2. Can a larger learning rate with fewer steps match 1e-4 over 2,000 steps?
# 3. Between step 1,000 and step 2,000 accuracy still rises, but slowly. Would 20,000 steps reach
#    100%? What does the gap between training and validation accuracy tell you?
