"""scripts/bench.py: a quick run of three sections as a real process, its written report, the
merge that keeps sections measured earlier, and one-line refusals of bad flags.

No timing thresholds here: how fast things are is the benchmark's report, not a test's verdict."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from labtest import REPO, lab_env

pytestmark = pytest.mark.slow

BENCH = REPO / "scripts" / "bench.py"
RATIO_LINE = re.compile(r"^ratio (\S+) (\S+)  \(.+\)$")
QUICK_SECTIONS = ("roofline", "ops", "input", "options")
EXPECTED_RATIOS = {
    "roofline.Lesson_1_CNN",
    "roofline.Lesson_2_MLP",
    "roofline.mlp_layer_matmul",
    "roofline.bfloat16_matmul",
    "roofline_bf16.Lesson_1_CNN",
    "roofline_bf16.Lesson_2_MLP",
    "mixed_bfloat16.Lesson_1_CNN",
    "mixed_bfloat16.Lesson_2_MLP",
    *(
        f"ops.{model}.{share}"
        for model in ("Lesson_1_CNN", "Lesson_2_MLP", "Lesson_1_CNN_mixed_bfloat16", "Lesson_2_MLP_mixed_bfloat16")
        for share in ("counted_share", "op_time_per_wall")
    ),
    "input.Lesson_2_MLP.arrays",
    "input.Lesson_2_MLP.tf_data",
    "input.Lesson_2_MLP.toolkit",
    "jit.Lesson_1_CNN",
    "jit.Lesson_2_MLP",
    "determinism.Lesson_1_CNN",
    "determinism.Lesson_2_MLP",
}


def bench(*args: str, tmp_path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        cwd=REPO,
        env=lab_env(tmp_path / "runs"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bench")
    report = tmp_path / "benchmarks.md"
    # The reference models come from Lesson 1's and Lesson 2's own quick runs, made first: minutes.
    done = bench("--quick", "--only", *QUICK_SECTIONS, "--write", str(report), tmp_path=tmp_path, timeout=600)
    return done, report


def test_quick_sections_print_finite_positive_ratios(quick_bench):
    done, _ = quick_bench
    assert done.returncode == 0, done.stderr[-2000:]
    ratios = {}
    for line in done.stdout.splitlines():
        if line.startswith("ratio "):
            match = RATIO_LINE.match(line)
            assert match, f"unparsable ratio line: {line!r}"
            ratios[match[1]] = float(match[2])
    assert set(ratios) == EXPECTED_RATIOS
    assert all(math.isfinite(value) and value > 0 for value in ratios.values()), ratios
    # The profiler's trace found the matmul and convolution kernels, and they are part of the op time.
    assert all(value <= 1 for name, value in ratios.items() if name.endswith(".counted_share")), ratios
    headers = re.findall(r"^== (\w+): ", done.stdout, re.M)
    assert headers == list(QUICK_SECTIONS)
    # The budget is asked for by name only, and only the sections named ran.
    assert "[overhead]" not in done.stdout and "[budget]" not in done.stdout
    machine = next(line for line in done.stdout.splitlines() if line.startswith("Machine: "))
    if machine.endswith("GPU none"):
        assert "Mixed precision: no GPU: skipped." in done.stdout


def test_write_holds_the_machine_and_the_tables(quick_bench):
    done, report = quick_bench
    assert done.returncode == 0, done.stderr[-2000:]
    text = report.read_text()
    for fact in ("CPU", "cores", "memory", "OS", "Python", "libraries", "GPU"):
        assert re.search(rf"^- {fact}: \S", text, re.M), fact
    assert re.search(r"^- libraries: tensorflow \d", text, re.M)
    blocks = re.findall(r"^<!-- bench:(\w+) -->$", text, re.M)
    assert blocks == list(QUICK_SECTIONS)
    assert "| workload | batch | GFLOP per call or step | median s (fastest) | GFLOP/s | of roofline |" in text
    assert "| Lesson 1 CNN, mixed_bfloat16 | 100 |" in text and "This CPU: " in text
    assert "| model | XLA | op determinism | steps | median s | steps/s |" in text
    assert "| model | op type | ms per step | share of op time |" in text
    assert re.search(r"^\| Lesson 1 CNN \| \w*(MatMul|Conv2D)\w* \| \d+\.\d\d \| \d+% \|$", text, re.M)
    assert "| Lesson 2 MLP, mixed_bfloat16 | wall time of a step |" in text
    for name in EXPECTED_RATIOS:
        assert f"`ratio {name} " in text, name
    assert "`python scripts/bench.py --only roofline --quick`" in text
    assert not report.with_name(report.name + ".partial").exists()


def test_write_keeps_sections_measured_earlier(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench
        from bench_common import Section
    finally:
        sys.path.remove(str(REPO / "scripts"))
    args = bench.parse(["--only", "budget", "--write", str(tmp_path / "b.md")])
    facts = [("CPU", "test CPU"), ("GPU", "none")]
    earlier = Section("budget", "Budget", headers=["a"], rows=[["41.0"]])
    earlier.ratio("budget.total_minutes", 0.7, "minutes")
    bench.write_markdown(tmp_path / "b.md", [earlier], args, facts)
    with open(tmp_path / "b.md", "a") as handle:  # the hand-written reading of the figures
        handle.write("<!-- bench:analysis -->\nWritten by hand.\n<!-- /bench:analysis -->\n")
    later = Section("overhead", "Overhead", headers=["b"], rows=[["1.01"]])
    later.goals.append(("at most 1.05x", True, "1.01x"))
    bench.write_markdown(tmp_path / "b.md", [later], args, facts)
    text = (tmp_path / "b.md").read_text()
    assert re.findall(r"^<!-- bench:(\w+) -->$", text, re.M) == ["analysis", "overhead", "budget"]
    assert "\nWritten by hand.\n" in text
    assert "`ratio budget.total_minutes 0.7`" in text and "| 41.0 |" in text and "| 1.01 |" in text
    assert "- Goal: at most 1.05x: **met** (1.01x)" in text.split("<!-- bench:")[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rounds", "0"], "argument --rounds: must be at least 1, got 0"),
        (["--only", "speed"], "argument --only: invalid choice: 'speed'"),
        (["--write", "{tmp}/no/such/b.md"], "the folder"),
        (["--quick", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, args, message):
    done = bench(*(arg.replace("{tmp}", str(tmp_path)) for arg in args), tmp_path=tmp_path, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench.py: error: ") and message in lines[0], done.stderr
    assert done.stdout == "" and not (tmp_path / "runs").exists() and not (tmp_path / "no").exists()


def test_quick_overhead_of_one_activity_times_both_loops_and_saves_no_model(tmp_path):
    """The overhead section's own code on the smallest activity, in a fresh process: the model its
    quick command saved, trained through a lab loop and a bare fit, each timed, their ratio finite;
    no activity file imported, and no model file left in the lab runs it made."""
    code = (
        "import json, sys, pathlib\n"
        "from bench_overhead import overhead\n"
        "section = overhead(quick=True, rounds=1, runs_root=pathlib.Path(sys.argv[1]), only=['lesson_3/regression'])\n"
        "print(json.dumps(sorted(name for name in sys.modules if name.startswith('lesson_'))))\n"
        "print(json.dumps(section.rows[0]))\n"
    )
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-c", code, str(runs)],
        cwd=REPO / "scripts",
        env=lab_env(runs),
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ratio = re.search(r"lesson_3/regression: (\S+)x", result.stdout)
    assert ratio and math.isfinite(float(ratio.group(1))) and float(ratio.group(1)) > 0, result.stdout
    imported, row = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert imported == [], f"the bench imported activity modules: {imported}"
    assert row[0] == "lesson_3/regression"
    for column in (5, 6):  # "median (fastest)" seconds: the fastest round is never slower than the median
        median, fastest = (float(value) for value in re.fullmatch(r"(\S+) \((\S+)\)", row[column]).groups())
        assert 0 < fastest <= median
    assert float(row[7]) > 0 and float(row[8]) > 0  # the paired ratio and the ratio of fastest rounds
    records = [json.loads(p.read_text()) for p in runs.rglob("run.json")]
    assert records and all(r["status"] == "finished" for r in records), [r["status"] for r in records]
    assert not list(runs.rglob("model.keras"))
