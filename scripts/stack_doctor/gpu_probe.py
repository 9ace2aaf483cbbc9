"""What the TensorFlow child process measures of the GPU: how TensorFlow was built, the devices it
lists, and a matmul timed on the GPU and on the CPU. gpu.py judges the results.
"""

from __future__ import annotations

import time


def probe_build(tf) -> dict:
    info = dict(tf.sysconfig.get_build_info()) if hasattr(tf.sysconfig, "get_build_info") else {}
    return {
        "built_with_cuda": bool(tf.test.is_built_with_cuda()),
        "cuda_version": info.get("cuda_version"),
        "cudnn_version": info.get("cudnn_version"),
        "is_rocm_build": bool(info.get("is_rocm_build", False)),
    }


def probe_gpus(tf) -> dict:
    devices = []
    for device in tf.config.list_physical_devices("GPU"):
        entry = {"name": device.name}
        try:
            details = tf.config.experimental.get_device_details(device)
            entry["device_name"] = details.get("device_name")
            capability = details.get("compute_capability")
            entry["compute_capability"] = list(capability) if capability else None
        except Exception:  # the details are a courtesy; the device itself is what counts
            pass
        devices.append(entry)
    return {"devices": devices}


def probe_smoke(tf, size: int = 1024, repeats: int = 10) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    left = rng.standard_normal((size, size), dtype=np.float32)
    right = rng.standard_normal((size, size), dtype=np.float32)

    def timed(device: str):
        with tf.device(device):
            a, b = tf.constant(left), tf.constant(right)
            result = tf.matmul(a, b)
            result.numpy()  # warm-up: kernel selection and the first transfer are not timed
            started = time.perf_counter()
            for _ in range(repeats):
                result = tf.matmul(a, b)
            values = result.numpy()  # waits for the queued GPU work to finish
            return result.device, values, (time.perf_counter() - started) / repeats

    gpu_device, gpu_values, gpu_seconds = timed("/GPU:0")
    cpu_device, cpu_values, cpu_seconds = timed("/CPU:0")
    scale = float(np.abs(cpu_values).max()) or 1.0
    return {
        "size": size,
        "gpu_result_device": gpu_device,
        "cpu_result_device": cpu_device,
        "max_relative_difference": float(np.abs(gpu_values - cpu_values).max()) / scale,
        "gpu_seconds": gpu_seconds,
        "cpu_seconds": cpu_seconds,
    }
