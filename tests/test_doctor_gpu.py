"""The doctor's GPU diagnosis, one layer at a time (stack_doctor.gpu)."""

import pytest
from test_test_stack import CUDA_WHEELS, assert_row, healthy_probe, make_world, run_doctor, statuses

from stack_doctor import gpu
from stack_doctor.core import CommandResult, DistInfo

ONE_GPU_SMI = CommandResult(0, "NVIDIA GeForce RTX 4090, 550.54.15, 24564 MiB\n")
ONE_TF_GPU = {
    "devices": [
        {"name": "/physical_device:GPU:0", "device_name": "NVIDIA GeForce RTX 4090", "compute_capability": [8, 9]}
    ]
}
GOOD_SMOKE = {
    "size": 1024,
    "gpu_result_device": "/job:localhost/replica:0/task:0/device:GPU:0",
    "cpu_result_device": "/job:localhost/replica:0/task:0/device:CPU:0",
    "max_relative_difference": 2e-4,
    "gpu_seconds": 0.001,
    "cpu_seconds": 0.03,
}
NVIDIA_LAYER_IDS = ["gpu.driver", "gpu.tf_build", "gpu.cuda_libs", "gpu.visible_devices", "gpu.tf_devices", "gpu.smoke"]


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


def gpu_world(world, *, devices=None, smoke=None, wheels=True):
    """nvidia-smi lists one GPU and TensorFlow is a CUDA build; the rest is up to the test."""
    world.smi = ONE_GPU_SMI
    if wheels:
        world.fake_packages.update(CUDA_WHEELS)
    changes = {"gpus": devices or {"devices": []}}
    if smoke is not None:
        changes["smoke"] = smoke
    world.probe = healthy_probe(**changes)
    return world


def gpu_rows(world, *args):
    code, rows, _ = run_doctor(world, *args)
    return code, {key: row for key, row in rows.items() if key.startswith("gpu.")}


# ---------------------------------------------------------------------------------------------
# Layer 1: the driver


def test_no_gpu_with_require_gpu_fails(world):
    code, rows = gpu_rows(world, "--require-gpu")
    assert code == 1
    row = assert_row(rows, "gpu.driver", "FAIL", "nvidia-smi not found", hint="nvidia-smi` lists the card")
    assert "(--require-gpu)" in row["required"]


def test_wsl2_without_a_driver_points_to_the_windows_side(world):
    world.is_wsl = lambda: True
    _, rows = gpu_rows(world)
    assert_row(rows, "gpu.driver", "WARN", "no NVIDIA driver", hint="on the Windows side")


def test_native_windows_without_a_driver_mentions_wsl2(world):
    world.system = "Windows"
    _, rows = gpu_rows(world)
    assert_row(rows, "gpu.driver", "WARN", "no NVIDIA driver", hint="WSL2")


@pytest.mark.parametrize(
    "output, fix",
    [
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "reboot"),
        ("Failed to initialize NVML: Driver/library version mismatch", "finishes only after a reboot"),
        ("No devices were found", "seated and powered"),
        ("", "reinstall the NVIDIA driver"),
    ],
)
def test_a_broken_driver_is_reported_from_nvidia_smi(world, output, fix):
    world.smi = CommandResult(9, output + "\n")
    _, rows = gpu_rows(world)
    assert list(rows) == ["gpu.driver"]  # the diagnosis stops at the first failing layer
    assert_row(rows, "gpu.driver", "WARN", "nvidia-smi failed: " + (output[:20] or "exit code 9"), hint=fix)


def test_nvidia_smi_output_and_cuda_visible_devices_parsing():
    assert gpu.parse_nvidia_smi("A100, 535.1, 40960 MiB\n\nbroken line\n") == [
        {"name": "A100", "driver": "535.1", "memory": "40960 MiB"}
    ]
    assert gpu.visible_device_count("0,1", 2) == (2, None)
    assert gpu.visible_device_count("1,7,0", 2) == (1, "7")  # CUDA stops at the first bad entry
    assert gpu.visible_device_count("GPU-8a1b-22,MIG-3f", 1) == (2, None)


# ---------------------------------------------------------------------------------------------
# Layers 2 and 3: a CUDA build of TensorFlow, and CUDA libraries it can load


def test_a_cpu_only_tensorflow_build_on_native_windows_points_to_wsl2(world):
    gpu_world(world)
    world.system = "Windows"
    world.probe["build"] = {"built_with_cuda": False, "cuda_version": None, "cudnn_version": None}
    _, rows = gpu_rows(world)
    assert list(rows) == ["gpu.driver", "gpu.tf_build"]
    assert_row(rows, "gpu.tf_build", "WARN", "built without CUDA", hint="install WSL2")


def test_a_cpu_only_tensorflow_build_on_linux_gets_the_and_cuda_hint(world):
    gpu_world(world)
    world.probe["build"] = {"built_with_cuda": False}
    _, rows = gpu_rows(world)
    assert_row(rows, "gpu.tf_build", "WARN", "built without CUDA", hint="tensorflow[and-cuda]")


def test_a_gpu_with_tensorflow_not_importing_stops_at_the_build_layer(world):
    gpu_world(world)
    world.probe = {"import_ok": False, "import_error": "ImportError: x", "returncode": 1, "stderr_clues": []}
    _, rows = gpu_rows(world)
    assert list(rows) == ["gpu.driver", "gpu.tf_build"]
    assert_row(rows, "gpu.tf_build", "WARN", "TensorFlow does not import", hint="tf.import")


def test_a_gpu_without_cuda_wheels_gets_the_and_cuda_hint(world):
    gpu_world(world, wheels=False)
    code, rows = gpu_rows(world)
    assert code == 0
    assert list(rows) == ["gpu.driver", "gpu.tf_build", "gpu.cuda_libs"]
    assert_row(
        rows, "gpu.cuda_libs", "WARN", "no nvidia-* CUDA wheels", hint='on Linux: pip install "tensorflow[and-cuda]'
    )


def test_cuda_libraries_tensorflow_cannot_load_are_named(world):
    gpu_world(world)
    world.probe["stderr_clues"] = ["Could not load dynamic library 'libcudnn.so.9'; dlerror: not found"]
    _, rows = gpu_rows(world)
    assert_row(rows, "gpu.cuda_libs", "WARN", "cannot load them", "libcudnn.so.9", hint="matching CUDA libraries")


def test_system_cuda_libraries_are_fine_when_tensorflow_lists_the_gpu(world):
    gpu_world(world, devices=ONE_TF_GPU, smoke=GOOD_SMOKE, wheels=False)
    _, rows = gpu_rows(world)
    assert_row(rows, "gpu.cuda_libs", "OK", "the system's CUDA libraries")


# ---------------------------------------------------------------------------------------------
# Layer 4: CUDA_VISIBLE_DEVICES


def test_cuda_visible_devices_minus_one_hides_the_gpu(world):
    gpu_world(world)
    world.env["CUDA_VISIBLE_DEVICES"] = "-1"
    code, rows = gpu_rows(world)
    assert code == 0
    assert statuses(rows) == {
        "gpu.driver": "OK",
        "gpu.tf_build": "OK",
        "gpu.cuda_libs": "OK",
        "gpu.visible_devices": "WARN",
    }
    assert_row(rows, "gpu.visible_devices", "WARN", "hides every GPU", hint=("unset CUDA_VISIBLE_DEVICES", "0 to 0"))


@pytest.mark.parametrize(
    "value, status, last",
    [
        ("", "WARN", "gpu.visible_devices"),
        ("3", "WARN", "gpu.visible_devices"),  # no GPU 3 here, and nothing before it
        ("0,3", "WARN", "gpu.smoke"),  # GPU 0 is left, so the diagnosis goes on
        ("0", "OK", "gpu.smoke"),
        ("GPU-8a1b-22", "OK", "gpu.smoke"),
    ],
)
def test_cuda_visible_devices_values(world, value, status, last):
    gpu_world(world, devices=ONE_TF_GPU, smoke=GOOD_SMOKE)
    world.env["CUDA_VISIBLE_DEVICES"] = value
    _, rows = gpu_rows(world)
    assert rows["gpu.visible_devices"]["status"] == status
    assert list(rows)[-1] == last


# ---------------------------------------------------------------------------------------------
# Layer 5: the devices TensorFlow lists


@pytest.mark.parametrize(
    "clue, cause, fix",
    [
        ("failed call to cuInit: CUDA_ERROR_NO_DEVICE", "CUDA did not start", "too old for CUDA 12.5.1"),
        (
            "CUDA driver version is insufficient for CUDA runtime version",
            "driver is too old",
            "update the NVIDIA driver (it must support CUDA 12.5.1)",
        ),
        ("no kernel image is available for execution on the device", "GPU is older", "CUDA_VISIBLE_DEVICES=-1"),
    ],
)
def test_nvidia_smi_sees_a_gpu_that_tensorflow_does_not(world, clue, cause, fix):
    gpu_world(world)
    world.probe["stderr_clues"] = [clue]
    code, rows = gpu_rows(world)
    assert code == 0
    assert list(rows) == NVIDIA_LAYER_IDS[:5]
    assert_row(
        rows,
        "gpu.tf_devices",
        "WARN",
        "nvidia-smi lists 1 GPU(s) but TensorFlow lists none",
        cause,
        "TensorFlow says: " + clue,
        hint=fix,
    )


def test_an_empty_device_list_without_a_clue_gets_the_general_advice(world):
    gpu_world(world)
    _, rows = gpu_rows(world)
    row = assert_row(rows, "gpu.tf_devices", "WARN", "TensorFlow lists none", hint="TF_CPP_MIN_LOG_LEVEL=0")
    assert "says" not in row["found"]


def test_tensorflow_listing_fewer_gpus_than_nvidia_smi_warns_and_goes_on(world):
    gpu_world(world, devices=ONE_TF_GPU, smoke=GOOD_SMOKE)
    world.smi = CommandResult(0, ONE_GPU_SMI.stdout * 2)
    _, rows = gpu_rows(world)
    assert_row(rows, "gpu.tf_devices", "WARN", "1 of the 2 visible GPU(s)")
    assert rows["gpu.smoke"]["status"] == "OK"


# ---------------------------------------------------------------------------------------------
# Layer 6: a matmul on the GPU, and macOS


def test_a_fake_gpu_that_passes_the_smoke_operation(world):
    gpu_world(world, devices=ONE_TF_GPU, smoke=GOOD_SMOKE)
    code, rows = gpu_rows(world, "--require-gpu")
    assert code == 0
    assert list(rows) == NVIDIA_LAYER_IDS
    assert set(statuses(rows).values()) == {"OK"}
    assert_row(rows, "gpu.driver", "OK", "1 GPU(s)", "NVIDIA GeForce RTX 4090", "driver 550.54.15")
    assert_row(rows, "gpu.tf_devices", "OK", "GPU:0 (NVIDIA GeForce RTX 4090)")
    assert_row(rows, "gpu.smoke", "OK", "1024x1024 matmul ran on GPU:0", "30.0x speed-up")
    assert_row(rows, "gpu.cuda_libs", "OK", "2 nvidia-* wheels")


@pytest.mark.parametrize(
    "smoke, found, fix",
    [
        (
            dict(GOOD_SMOKE, gpu_result_device="/job:localhost/replica:0/task:0/device:CPU:0"),
            "ran on /job",
            "cannot place work on the GPU",
        ),
        (dict(GOOD_SMOKE, max_relative_difference=0.5), "differs from the CPU by 0.5", "computes wrong results"),
        ({"error": "InternalError: CUDA_ERROR_ILLEGAL_ADDRESS"}, "failed: InternalError", "update the GPU driver"),
    ],
)
def test_a_failing_smoke_operation_fails_even_without_require_gpu(world, smoke, found, fix):
    gpu_world(world, devices=ONE_TF_GPU, smoke=smoke)
    code, rows = gpu_rows(world)
    assert code == 1
    assert_row(rows, "gpu.smoke", "FAIL", found, hint=(fix, "CUDA_VISIBLE_DEVICES=-1"))


def test_macos_without_tensorflow_metal_warns(world):
    world.system = "Darwin"
    code, rows = gpu_rows(world)
    assert code == 0
    assert statuses(rows) == {"gpu.metal": "WARN"}
    assert_row(rows, "gpu.metal", "WARN", "not installed", hint="pip install tensorflow-metal")


def test_macos_with_tensorflow_metal_goes_on_to_the_devices(world):
    world.system = "Darwin"
    world.fake_packages["tensorflow-metal"] = DistInfo("tensorflow-metal", "1.2.0")
    _, rows = gpu_rows(world)
    assert list(rows) == ["gpu.metal", "gpu.tf_devices"]
    assert_row(rows, "gpu.metal", "OK", "tensorflow-metal 1.2.0")
    assert_row(rows, "gpu.tf_devices", "WARN", "TensorFlow lists no GPU")
