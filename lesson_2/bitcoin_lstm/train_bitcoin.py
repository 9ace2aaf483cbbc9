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
# # Lesson 2: forecasting next week's Bitcoin prices with an LSTM
#
# Lesson 1 ended with a question: digits are one thing, but can a network learn anything from
# real, noisy prices? This page starts the course's own thread, which runs through three lessons:
#
# - **Lesson 2 (here), the architecture:** turn daily prices into the tensors a recurrent network
#   reads, build a small LSTM, train it, and plot its forecast over the real prices;
# - **Lesson 3, evaluation and optimization** (`lesson_3/bitcoin_evaluation/`): score it honestly
#   against forecasts that learn nothing, then improve it one change at a time;
# - **Lesson 4, productization** (`lesson_4/bitcoin_walk_forward/` and the server in
#   `lesson_4/serve/`): keep it current as new weeks arrive, and answer forecasts over HTTP.
#
# The data is the original course's own: daily CoinMarketCap prices from 2013-04-28 to
# 2017-11-07, shipped in `data/bitcoin/` with its source and licence, so this runs offline.
#
# This file is both the script and the notebook (`train_bitcoin.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_2/bitcoin_lstm/train_bitcoin.py            # 100 epochs, as in the original
# python lesson_2/bitcoin_lstm/train_bitcoin.py --quick    # the same cells, 2 epochs, seconds
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
# The original's: 100 epochs on one training sequence (so one sample per batch), RMSprop at
# Keras's default rate of 0.001. `--csv`, `--start` and `--end` choose the prices; a file with the
# wrong columns, a price that is not a number, or a range too short for the model is refused in
# one line before anything is written.

# %%
from labkit import cli
from labkit.bitcoin import PARSER_SETTINGS, add_price_flags

parser = cli.build_parser(
    "Lesson 2: forecast next week's Bitcoin closes with an LSTM over 76 weeks.",
    epochs=100,
    learning_rate=0.001,
    batch_size=1,
    **PARSER_SETTINGS,  # one dataset; --resume and --distribute refused with their reason
)
add_price_flags(parser)  # --csv PATH, --start YYYY-MM-DD, --end YYYY-MM-DD
config = cli.parse(parser)
print(config.plan)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from labkit.bitcoin import load_prices, weekly_split
from labkit.training import start_run

# %% [markdown]
# ## The data: four and a half years of daily prices
#
# One row per day. `close` is the price at the end of the day in US dollars, `volume` the dollars
# traded that day (the file has none before 2013-12-27), and `iso_week` the week the day belongs to.
# In this file a week runs from Sunday to Saturday, numbered within its year.

# %%
prices = load_prices(config.csv)  # extra code: checks the file, or says in one line what is wrong
print("prices:", prices.shape, "| from", prices.date.min().date(), "to", prices.date.max().date())
prices.head()

# %%
data = weekly_split(config.csv, config.start, config.end)  # extra code: the weeks and tensors, derived by hand below
run = start_run(config, data, hparams={"lstm_units": 7, "window_weeks": 76})  # extra code: a new run folder

# %%
fig, (ax_close, ax_volume) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
ax_close.plot(prices.date, prices.close)
ax_close.set(ylabel="close (US$)", yscale="log", title="Bitcoin, daily close and volume")
ax_volume.plot(prices.date, prices.volume / 1e9, color="tab:orange")
ax_volume.set(ylabel="volume (US$ billions)")
for ax in (ax_close, ax_volume):
    ax.axvspan(pd.Timestamp(config.start), prices.date.max(), color="grey", alpha=0.15)
plt.show()

# %% [markdown]
# The close rose from about \$100 to over \$7,000, most of it in 2017 (note the logarithmic
# scale). Like the original course we keep the shaded part, from 2016 on: prices from a much
# smaller market say little about this one.
#
# ## Weeks, normalized to their first day
#
# The model forecasts a week at a time, so the days are grouped into their weeks. A week cut short
# by the start or the end of the range (January 2016 begins on a Friday) is dropped.

# %%
recent = prices[prices.date >= config.start]
if config.end:
    recent = recent[recent.date <= config.end]
days_per_week = recent.groupby("iso_week").size()
complete = recent[recent.iso_week.isin(days_per_week[days_per_week == 7].index)].copy()
cut_short = days_per_week[days_per_week < 7].to_dict()
print(f"{len(days_per_week)} weeks from {config.start}; dropped, cut short:", cut_short)
print(f"{complete.iso_week.nunique()} complete weeks, {len(complete)} days")

# %% [markdown]
# A neural network learns best from inputs of similar size, and a \$400 week and a \$7,000 week
# are not. So each week is expressed relative to its own first day: `close / first_close - 1`.
# Every week then starts at 0, and a value of 0.05 means "5% above this week's Sunday". The
# network learns the shape of a week, not its price level.

# %%
first_close = complete.groupby("iso_week").close.transform("first")
complete["normalized"] = complete.close / first_close - 1
complete[["date", "iso_week", "close", "normalized"]].head(8)

# %%
fig, (ax_raw, ax_norm) = plt.subplots(1, 2, figsize=(11, 4))
for week, days in list(complete.groupby("iso_week"))[-6:]:
    ax_raw.plot(range(7), days.close, marker="o", label=week)
    ax_norm.plot(range(7), days.normalized, marker="o", label=week)
ax_raw.set(title="the last six weeks, in dollars", xlabel="day of the week", ylabel="close (US$)")
ax_norm.set(title="the same weeks, relative to their first day", xlabel="day of the week", ylabel="close / first - 1")
ax_norm.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Tensors for a recurrent network: (samples, timesteps, features)
#
# An LSTM reads a sequence one timestep at a time and carries a memory from one step to the next.
# Keras wants sequences as a rank-3 tensor: **(samples, timesteps, features)**. Here a timestep is
# a week and its features are its seven normalized days.
#
# The original course splits the weeks in time, never at random: the first 80% train, the last 20%
# are held out, because a forecaster is only ever asked about a future it has not seen. With 96
# weeks that is 77 for training. The model's input is **76 weeks**; the 77th is what it learns to
# forecast. So the whole training set is one sequence: `x_train` is (1, 76, 7).
#
# Each held-out week gets its own input: the 76 weeks before it, which are all known by the time
# it would be forecast.

# %%
weekly = complete.pivot_table(index="iso_week", columns=complete.groupby("iso_week").cumcount(), values="normalized")
weekly = weekly.to_numpy(dtype="float32")  # (weeks, 7 days), oldest first
n_weeks = len(weekly)
n_train = int(np.ceil(0.8 * n_weeks))  # 77 of 96
window = 76

x_train = weekly[n_train - 1 - window : n_train - 1].reshape(1, window, 7)
y_train = weekly[n_train - 1].reshape(1, 7)
x_test = np.stack([weekly[week - window : week] for week in range(n_train, n_weeks)])
y_test = weekly[n_train:]
print("weekly:", weekly.shape, f"| {n_train} training weeks, {n_weeks - n_train} held out")
print("x_train:", x_train.shape, "y_train:", y_train.shape)
print("x_test: ", x_test.shape, "y_test: ", y_test.shape)

# %% [markdown]
# Lessons 3 and 4 build the very same tensors with one call, `weekly_split()` (the run above was
# opened with it). We check that it gives what we just derived by hand.

# %%
for ours, lab in [(x_train, data.x_train), (y_train, data.y_train), (x_test, data.x_test), (y_test, data.y_test)]:
    np.testing.assert_allclose(ours, lab, atol=1e-6)
described = data.describe()
print("the same tensors as weekly_split(): train", described["train_weeks"], "held out", described["held_out_weeks"])

# %% [markdown]
# ## The model
#
# One LSTM layer of 7 units reads the 76 weeks and ends in a summary of 7 numbers; a Dense layer
# of 7 units with a linear activation turns it into the next week's seven normalized closes. Linear,
# because a price can move up or down by any amount: a sigmoid or a ReLU would cut part of that off.
#
# An LSTM unit has four gates, each with weights for the input (7 features), for the previous
# output (7 units) and a bias: 4 x (7 x 7 + 7 x 7 + 7) = 420 weights. The Dense layer adds
# 7 x 7 + 7 = 56.

# %%
model = keras.Sequential(
    [
        keras.Input(shape=(window, 7), name="weeks"),
        keras.layers.LSTM(7, name="lstm"),
        keras.layers.Dense(7, activation="linear", name="next_week"),
    ],
    name="bitcoin_lstm_v0",
)
model.summary()
print(f"{model.count_params()} weights")

# %% [markdown]
# ## Compile
#
# The loss is the mean squared error between the forecast and the true normalized week, as in the
# original, with RMSprop, an optimizer that often suits recurrent networks.

# %%
model.compile(loss="mse", optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate))

# %% [markdown]
# ## Train
#
# Open TensorBoard to watch it: `python3 scripts/lab.py tensorboard runs/lesson_2/bitcoin_lstm`
# (`epoch_loss` under `train`, and under `validation` for the held-out weeks, which serve here only
# to draw that curve: nothing is chosen by them in this lesson). Each epoch is one gradient step on
# the one training sequence, so the 100 epochs run in well under a minute. `validation_batch_size`
# scores the 19 held-out weeks in one batch; by default Keras would use `batch_size`, one week at a
# time, and spend most of each epoch on it.

# %%
# %load_ext tensorboard

# %%
runs_folder = run.dir.parent
# %tensorboard --logdir "$runs_folder"

# %%
tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
history = model.fit(
    x_train,
    y_train,
    batch_size=1,
    epochs=run.epochs,  # 100; 2 in quick mode
    validation_data=(x_test, y_test),
    validation_batch_size=len(x_test),  # the held-out weeks in one batch, not one by one
    callbacks=[tensorboard, *run.callbacks(tensorboard)],  # extra code: run.json and a line per epoch
    verbose=0,
)
curves = pd.DataFrame(history.history, index=pd.Index(np.array(history.epoch) + 1, name="epoch"))
print(curves.iloc[np.unique(np.r_[0 : len(curves) : 10, len(curves) - 1])].to_string(float_format="{:.6f}".format))

# %% [markdown]
# The training loss falls towards zero: with one training sequence the network can fit that single
# week almost exactly. The held-out loss does not follow it. Remember that gap; Lesson 3 is about it.

# %%
ax = curves[["loss", "val_loss"]].plot(figsize=(8, 4), logy=True, grid=True)
ax.set(ylabel="MSE (normalized)", title="training loss, and the held-out weeks' loss")
plt.show()

# %% [markdown]
# ## Evaluate on the held-out weeks

# %%
test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
run.record_test(test_metrics)  # extra code: into run.json and TensorBoard's `test` run
print(f"held-out MSE on the normalized weeks: {test_metrics['loss']:.5f}")

# %% [markdown]
# ## Predict, and turn the forecast back into dollars
#
# The model answers in normalized values. The original course turns them back into prices with the
# last close it knows, the Saturday before the forecast week: `last_close * (y + 1)`. That is an
# approximation, since the week is normalized to its own Sunday, which is not known yet.

# %%
predicted = model.predict(x_test, verbose=0)  # (19, 7): seven normalized days per held-out week
week_dates = complete.date.to_numpy().reshape(n_weeks, 7)
closes = complete.close.to_numpy().reshape(n_weeks, 7)
last_close = closes[n_train - 1 : n_weeks - 1, -1]  # each held-out week's Saturday before
forecast = last_close[:, None] * (predicted + 1)
true = closes[n_train:]
mape = 100 * np.mean(np.abs(forecast - true) / true)
rmse = np.sqrt(np.mean((forecast - true) ** 2))
print(f"forecast vs the real closes of {len(true)} held-out weeks: MAPE {mape:.2f}%, RMSE ${rmse:,.0f}")
print("the original course's first model was off by about 8.4% (MAPE)")
run.record.add_extra("forecast", {"mape_percent": float(mape), "rmse_usd": float(rmse)})  # extra code: into run.json

# %%
fig, ax = plt.subplots(figsize=(11, 4.5))
start = n_train - 8
ax.plot(week_dates[start:].ravel(), closes[start:].ravel(), color="black", label="real close")
for k, week in enumerate(range(n_train, n_weeks)):
    ax.plot(week_dates[week], forecast[k], color="tab:red", label="forecast, one week at a time" if k == 0 else None)
ax.axvline(week_dates[n_train, 0], color="grey", linestyle="--")
ax.set(ylabel="close (US$)", title="held-out weeks: each forecast made from the 76 weeks before it")
ax.legend()
plt.show()

# %% [markdown]
# ## Next week: as close to the future as the data gets
#
# The last 76 complete weeks are the input for a forecast of the week after them. The file holds
# only the first three days of that week (it ends on 2017-11-07), which is why it was dropped as a
# week cut short: four of the seven days are the future even for this data.

# %%
next_input = weekly[-window:].reshape(1, window, 7)
next_week = closes[-1, -1] * (model.predict(next_input, verbose=0)[0] + 1)
next_days = pd.date_range(week_dates[-1, -1] + np.timedelta64(1, "D"), periods=7)
print(f"forecast for the week of {next_days[0].date()}, from the close of ${closes[-1, -1]:,.2f}:")
print(pd.Series(next_week.round(2), index=next_days.date, name="close (US$)").to_string())
run.record.add_extra(  # extra code: into run.json
    "next_week", {"first_day": str(next_days[0].date()), "closes": [round(float(c), 2) for c in next_week]}
)

# %%
run.finish(model)  # extra code: saves model.keras in the run folder; run.json says "finished"

# %% [markdown]
# ## Questions to explore
#
# 1. The first value of every forecast week is close to the last known close. Why must it be,
#    given the normalization?
# 2. Train with `--epochs 300`. What happens to the training loss, and to the held-out loss? What
#    does one training sequence let a network learn?
# 3. Plot `predicted` for the 19 held-out weeks on one chart. How different are the weeks the model
#    forecasts from one another?
# 4. Try `--start 2015-01-01`: more weeks, so a longer history before the 76-week window. Which
#    tensors change shape, and which stay the same?
# 5. A week of Bitcoin prices is a sequence of 7 numbers. What other data would you shape as
#    (samples, timesteps, features)? Name the three axes for each.
