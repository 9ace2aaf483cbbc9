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
# # Lesson 4: keeping the Bitcoin forecaster current, one week at a time
#
# Lesson 2 trained an LSTM on the 76 weeks before mid-2017 and froze it. But a forecaster in use
# does not stand still: every Saturday night a new week of prices is known, and the model could
# learn from it. The original course names two ways to do that:
#
# - **retrain**: keep training the model you already have, on the newest week only;
# - **fresh**: throw it away and train a new model of the same shape on all the weeks known so far.
#
# This page replays the 19 held-out weeks of 2017 (2017-06-25 to 2017-11-04) as if they arrived
# one by one: a **walk forward**. Each week, every strategy forecasts it from the 76 weeks before
# it, the forecast is scored against the real closes, and only then does each strategy learn that
# week. Two references learn nothing: Lesson 2's model, frozen, and persistence ("every day of
# next week at this week's last close"), the baseline that Lesson 3 showed to be hard to beat.
#
# This file is both the script and the notebook (`walk_forward.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_4/bitcoin_walk_forward/walk_forward.py                      # from the newest full Lesson 2 run
# python lesson_4/bitcoin_walk_forward/walk_forward.py --quick              # the newest quick one: 3 weeks, seconds
# python lesson_4/bitcoin_walk_forward/walk_forward.py --baseline RUN_DIR   # from the run you name
# ```
#
# In the notebook, set `LAB_QUICK=1` before starting Jupyter for the quick version.

# %%
# extra code: lets this page run outside the lab's environment (scripts/lab_bootstrap.py). With the
# lab installed it does nothing. In Colab, which opens a notebook alone, it clones the lab and installs
# it (a few minutes, once per session); anywhere else it says in one line how to run this page.
import importlib.util
import os
import sys
from pathlib import Path

if importlib.util.find_spec("labkit") is None:
    if "google.colab" in sys.modules and not Path("keras-course-lab").is_dir():
        os.system("git clone -q https://github.com/keras-course-lab/keras-course-lab")
    # A script knows its own file; a notebook runs in its own folder.
    sys.path += [str(Path(globals().get("__file__", ".")).parent / "../../scripts"), "keras-course-lab/scripts"]
    import lab_bootstrap

    lab_bootstrap.main()

# %% [markdown]
# ## The settings
#
# - `--epochs` (100, as in Lesson 2): how long each fresh model trains. Each of its epochs is one
#   gradient step on all the windows it learns from, so `--batch-size` is refused here.
# - `--retrain-epochs` (10): how many steps the retrained model takes on each new week. "A few":
#   it already knows the older weeks, and a long fit on one window would overwrite them.
# - `--learning-rate` (0.001): the fresh models' RMSprop rate. The retrained model keeps the
#   optimizer it was saved with, state and rate included.
# - `--weeks N`: walk only the first N held-out weeks (default: all of them).
#
# **Quick mode** (`--quick`, or `LAB_QUICK=1`) walks the first 3 held-out weeks only, and caps
# every fit at 2 epochs: the same code path, in seconds, and numbers that mean little.

# %%
from labkit import LabError, cli
from labkit.bitcoin import PARSER_SETTINGS, add_price_flags

QUICK_WEEKS = 3  # quick mode walks this many held-out weeks

parser = cli.build_parser(
    "Lesson 4: walk a Bitcoin forecaster forward over the held-out weeks, retrained two ways.",
    epochs=100,
    learning_rate=0.001,
    batch_size=1,
    **{
        **PARSER_SETTINGS,  # one dataset; --resume and --distribute refused with their reason
        "not_here": {
            **PARSER_SETTINGS["not_here"],
            "--batch-size": "every fit here takes all the windows it learns from in one step",
        },
    },
)
add_price_flags(parser)  # --csv PATH, --start YYYY-MM-DD, --end YYYY-MM-DD
parser.add_argument(
    "--baseline",
    metavar="RUN_DIR",
    help="the forecaster to start from: a finished run of lesson_2/bitcoin_lstm (default: the newest, "
    "quick for --quick)",
)
parser.add_argument(
    "--retrain-epochs",
    type=cli.positive_int,
    default=10,
    help="epochs of the retrained model on each new week (default 10; at most 2 with --quick)",
)
parser.add_argument(
    "--weeks",
    type=cli.positive_int,
    default=None,
    help=f"walk only the first N held-out weeks (default: all; {QUICK_WEEKS} with --quick)",
)
config = cli.parse(parser)
print(config.plan)

# %% [markdown]
# ## The forecaster to keep current
#
# Every finished Lesson 2 run saved its model as `model.keras`. We take the newest finished
# `lesson_2/bitcoin_lstm` run (a quick one for a quick walk), or the run `--baseline` names: a
# Lesson 3 variant works too, as long as it is a forecaster, 76 weeks of 7 days in, 7 days out.
# In the notebook, if there is none yet, run Lesson 2's script first.

# %%
from labkit.saved_models import find_model, read_card

baseline_path, baseline_record = find_model(  # extra code: checks the folder, says in one line what is wrong
    config.runs_root,
    "lesson_2",
    "bitcoin_lstm",
    run_dir=config.baseline,
    flag="--baseline",
    quick=config.quick,
    flags={"--logdir": config.logdir},  # for the command that trains one
)
baseline_dir = baseline_path.parent.resolve()
print("Starting from:", baseline_dir)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf

from labkit.bitcoin import (
    WINDOW_WEEKS,
    baseline_forecasts,
    forecast_scores,
    forecaster_mismatch,
    weekly_split,
)
from labkit.training import start_run

# %% [markdown]
# `keras.models.load_model` rebuilds the model with Lesson 2's weights and, since it was saved
# compiled, compiles it again: the same optimizer and learning rate. The lab saves a finished run
# without the optimizer's running averages, so they start afresh here (Keras warns that it
# skipped them). We load it twice: one copy learns every week, the other stays frozen as a reference.

# %%
try:  # extra code: a damaged file raises anything from zipfile, h5py or Keras; say so in one line
    retrained = keras.models.load_model(baseline_path)  # will learn each new week
    frozen = keras.models.load_model(baseline_path)  # never trained again
except Exception as error:
    raise LabError(f"--baseline {baseline_dir}: its model.keras cannot be loaded ({type(error).__name__})") from None
retrained.summary()


# %%
if mismatch := forecaster_mismatch(frozen):  # extra code: a one-line refusal, before anything is written
    raise LabError(f"--baseline {baseline_dir} is not a forecaster: {mismatch}; give a lesson_2/bitcoin_lstm run")
if retrained.optimizer is None:  # extra code: saved without its optimizer, it cannot continue
    raise LabError(f"--baseline {baseline_dir}: its model was saved without an optimizer; it cannot keep training")

# %% [markdown]
# ## The weeks, and which of them the walk forecasts
#
# The same split as Lessons 2 and 3: complete weeks from `--start`, each normalized to its first
# day; the first 80% were the baseline's training data, the last 20% are held out. Week `t` here
# is a week's position in that series (0 is the first complete week of 2016), and the walk runs
# over the held-out ones, t = 77 to 95 on the default range.

# %%
data = weekly_split(config.csv, config.start, config.end)
weeks = data.weeks
held_out = data.test_targets
n_walk = min(QUICK_WEEKS, len(held_out)) if config.quick else len(held_out)
if config.weeks is not None:
    if config.weeks > len(held_out):  # extra code: one line, before the run folder is made
        raise LabError(f"--weeks {config.weeks}: this range holds {len(held_out)} held-out weeks")
    n_walk = min(n_walk, config.weeks)
walk = held_out[:n_walk]


def labels_of(targets):
    return [weeks.labels[t] for t in targets]


print(f"{len(weeks)} complete weeks; the baseline trained on weeks 0-{data.n_train_weeks - 1}")
print(f"walking {len(walk)} of the {len(held_out)} held-out weeks: t = {walk[0]} ({labels_of(walk)[0]}) to {walk[-1]}")

# %%
trained_on = baseline_record.get("dataset", {})  # extra code: the baseline must not have seen a walked week
last_trained = (trained_on.get("train_weeks") or [None, None])[1]
seen = weeks.labels.index(last_trained) if last_trained in weeks.labels else None
if trained_on.get("name") != "bitcoin" or seen is None or seen >= walk[0]:
    raise LabError(
        f"--baseline {baseline_dir}: it trained on {trained_on.get('name')} up to week {last_trained}, and this "
        f"walk starts at week {weeks.labels[walk[0]]}; give a run trained on the same --start and --end"
    )

# %%
retrain_epochs = min(config.retrain_epochs, config.plan.epochs) if config.quick else config.retrain_epochs
run = start_run(  # extra code: a new run folder
    config,
    data,
    hparams={"retrain_epochs": retrain_epochs, "walked_weeks": len(walk), "window_weeks": WINDOW_WEEKS},
)
run.record.add_extra(  # extra code: which exact model the walk started from
    "baseline",
    {
        "run_dir": str(baseline_dir),
        "identity": read_card(baseline_path)["identity"],
        "quick": baseline_record.get("quick"),
    },
)

# %% [markdown]
# ## One week of the walk
#
# For week `t`, the input is the 76 weeks before it, all known by the Saturday before `t`. A
# forecast is scored as in Lesson 3: MSE on the normalized week, and RMSE and MAPE in dollars,
# after turning it back into prices with the last close before the week.


# %%
def window(t):
    """The input for week t: the 76 normalized weeks before it, (1, 76, 7)."""
    return weeks.windows([t])


def score(predicted, t) -> dict:
    """One week's forecast (normalized, (1, 7)) against the real week t."""
    return forecast_scores(predicted, weeks.normalized[[t]], data.last_closes([t]), weeks.closes[[t]])


# %% [markdown]
# The fresh strategy builds a new network each week. `keras.models.clone_model` copies the
# architecture, not the weights: its layers start from new random weights. We compile it as
# Lesson 2 did and train it on every window whose target week is known: the baseline's own
# training window (target week 76), then one more each week. Each epoch is one gradient step on
# all of them (1 window at first, 20 after the last held-out week).


# %%
def train_fresh(known_targets):
    """A new model of the baseline's architecture, trained from scratch on the windows of `known_targets`."""
    model = keras.models.clone_model(frozen)
    model.compile(loss="mse", optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate))
    x, y = weeks.windows(known_targets), weeks.normalized[known_targets].astype("float32")
    model.fit(x, y, batch_size=len(x), epochs=run.epochs, verbose=0)
    return model


# %% [markdown]
# ## The walk
#
# Before the first held-out week, the fresh model is trained on the one window the baseline knew,
# and the retrained model is the baseline itself, so in the first week it forecasts exactly what
# the frozen model does. Then, week after week: forecast, score, learn.
#
# The errors go to TensorBoard as they come, one chart per score with one curve per strategy
# (`weekly_mape_percent` and friends; the x axis is the week `t`): `python3 scripts/lab.py
# tensorboard runs/lesson_4/bitcoin_walk_forward`.

# %%
# %load_ext tensorboard

# %%
runs_folder = run.dir.parent
# %tensorboard --logdir "$runs_folder"

# %%
STRATEGIES = ("retrain", "fresh", "frozen", "persistence")
if not config.verbose:  # extra code: each fresh model traces its own predict function, and TensorFlow warns about it
    tf.get_logger().setLevel("ERROR")
keras.utils.set_random_seed(config.seed)  # extra code: the same fresh weights in a script and a notebook
known = [int(t) for t in data.train_targets]  # target weeks learned so far: the training week (76)
fresh = train_fresh(known)
fresh_windows = [len(known)]  # windows behind each fresh model
writers = {name: run.open_writer(name) for name in STRATEGIES}  # extra code: <run>/<strategy>, one curve each
forecasts = {name: [] for name in STRATEGIES}  # normalized, one (7,) row per walked week
weekly = {name: [] for name in STRATEGIES}  # one dict of scores per walked week

for t in walk:
    x = window(t)
    predicted = {
        "retrain": retrained.predict(x, verbose=0),
        "fresh": fresh.predict(x, verbose=0),
        "frozen": frozen.predict(x, verbose=0),
        "persistence": baseline_forecasts(x)["persistence"],
    }
    for name, prediction in predicted.items():
        scores = score(prediction, t)
        forecasts[name].append(prediction[0])
        weekly[name].append(scores)
        with writers[name].as_default():  # extra code: into TensorBoard, step = week t
            for metric, value in scores.items():
                tf.summary.scalar(f"weekly_{metric}", value, step=int(t))
    print(
        f"week {t} ({weeks.labels[t]}) MAPE %: "
        + ", ".join(f"{name} {weekly[name][-1]['mape_percent']:.2f}" for name in STRATEGIES)
    )

    # Week t is now known: each strategy learns it.
    retrained.fit(x, weeks.normalized[[t]].astype("float32"), batch_size=1, epochs=retrain_epochs, verbose=0)
    known.append(int(t))
    fresh = train_fresh(known)
    fresh_windows.append(len(known))

for writer in writers.values():  # extra code
    writer.flush()
print(f"the last fresh model trained on {len(known)} windows (target weeks {known[0]} to {known[-1]})")

# %% [markdown]
# ## The error of each strategy over time

# %%
labels = labels_of(walk)
mape = pd.DataFrame({name: [s["mape_percent"] for s in weekly[name]] for name in STRATEGIES}, index=labels)
mape.index.name = "week"
print("MAPE (%) of each week's forecast:")
print(mape.round(2).to_string())

# %%
fig, ax = plt.subplots(figsize=(10, 4))
mape.plot(ax=ax, marker="o", grid=True)
ax.set(xlabel="forecast week", ylabel="MAPE (%)", title="weekly error of each strategy, walking forward")
ax.tick_params(axis="x", labelrotation=45)
plt.show()

# %% [markdown]
# The forecasts themselves, in dollars, over the real closes of the walked weeks:

# %%
last_close = data.last_closes(walk)
dollars = {name: last_close[:, None] * (np.array(forecasts[name]) + 1) for name in STRATEGIES}
fig, ax = plt.subplots(figsize=(11, 4.5))
ax.plot(weeks.dates[walk].ravel(), weeks.closes[walk].ravel(), color="black", label="real close")
for name, color in zip(STRATEGIES, ("tab:blue", "tab:orange", "tab:green", "tab:grey"), strict=True):
    for k, t in enumerate(walk):
        ax.plot(weeks.dates[t], dollars[name][k], color=color, label=name if k == 0 else None)
ax.set(ylabel="close (US$)", title="each week forecast from the 76 weeks before it")
ax.legend()
plt.show()

# %% [markdown]
# ## Which strategy won?
#
# Over every forecast day of the walk: MSE on the normalized weeks, RMSE and MAPE in dollars.

# %%
true_closes = weeks.closes[walk]
overall = {
    name: forecast_scores(np.array(forecasts[name]), weeks.normalized[walk], last_close, true_closes)
    for name in STRATEGIES
}
table = pd.DataFrame(overall).T.sort_values("mape_percent")
print(table.to_string(float_format="{:.4f}".format))

winner = table.index[0]
persistence_mape = overall["persistence"]["mape_percent"]
beats_persistence = {
    name: overall[name]["mape_percent"] < persistence_mape for name in STRATEGIES if name != "persistence"
}
learner = min(("retrain", "fresh"), key=lambda name: overall[name]["mape_percent"])
print(f"\nLowest MAPE over {len(walk)} weeks: {winner} ({overall[winner]['mape_percent']:.2f}%)")
print(f"Of the two ways to keep the model current, {learner} did better ({overall[learner]['mape_percent']:.2f}%)")
for name, beats in beats_persistence.items():
    verdict = "beats" if beats else "does NOT beat"
    print(f"{name} {verdict} persistence: {overall[name]['mape_percent']:.2f}% vs {persistence_mape:.2f}% MAPE")

# %% [markdown]
# Read the verdict above as it is. A model that only ties persistence has learned nothing that
# matters for next week's prices. Over a few weeks, and with one training sequence behind each
# model, one lucky week can swing the ranking: the TensorBoard curves show which weeks did it.

# %%
run.record.add_extra(  # extra code: the whole walk into run.json
    "walk_forward",
    {
        "weeks": labels,
        "targets": [int(t) for t in walk],
        "strategies": list(STRATEGIES),
        "weekly": weekly,
        "forecasts_usd": {name: dollars[name].tolist() for name in STRATEGIES},
        "overall": overall,
        "winner": winner,
        "better_learner": learner,
        "beats_persistence": beats_persistence,
        "retrain_epochs": retrain_epochs,
        "fresh_epochs": run.epochs,
        "fresh_windows": fresh_windows,  # windows of each fresh fit: before the walk, then after each week
        "kept_model": "fresh",
    },
)

# %% [markdown]
# ## The model to serve
#
# The run keeps the last fresh model: a new network trained from scratch on every week known,
# the held-out weeks included. It depends only on the data and the settings, not on the path a
# model took through the weeks, so anyone can train it again and get the same thing; it is
# also the model that has seen the most recent prices. Its scores in `run.json`'s test metrics are
# those of the fresh strategy over the walk (the forecasts it made before seeing each week).
# Lesson 4's server answers `GET /forecast` with the newest finished run of this page.

# %%
fresh_scores = overall["fresh"]
run.record_test({"loss": fresh_scores["mse"], **fresh_scores})  # extra code: into run.json and TensorBoard's `test` run
run.finish(fresh)  # extra code: saves model.keras and its card in the run folder; run.json says "finished"

# %% [markdown]
# ## Questions to explore
#
# 1. In the first week the retrained and the frozen model forecast the same thing. Why? After how
#    many weeks do their forecasts differ visibly?
# 2. Try `--retrain-epochs 1` and `--retrain-epochs 100`. What happens to the retrained model's
#    weekly error? What does a long fit on one window do to what it knew?
# 3. The fresh model is trained on up to 20 windows that overlap almost completely (each is the
#    previous one moved by a week). How much new information does each week really add?
# 4. Retraining costs a few steps a week, a fresh model a full training. Measure both times. When
#    would you pay for the fresh one, and when would a monthly fresh model be enough?
# 5. Walk forward from a Lesson 3 variant (`--baseline RUN_DIR`). Does a model that scored better
#    on the held-out weeks in Lesson 3 also stay better when it keeps learning?
# 6. Neither learning strategy is worth serving if it cannot beat persistence. What would you put
#    in the server's answer so that a user knows how much to trust the forecast?
