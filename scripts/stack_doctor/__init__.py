"""The environment doctor behind scripts/test_stack.py, one module per family of checks.

    core               a row (Check), its statuses, outside-command results, small helpers
    world              World: every fact gathered from the machine, so tests can replace one
    python_packages    Python itself, the course's packages (versions via `packaging`), pip check, labkit
    tensorflow_keras   the TensorFlow child process (--tf-probe), the import and Keras rows
    gpu                the GPU diagnosis, layer by layer, stopping at the first that fails
    gpu_probe          what the TensorFlow child measures of the GPU (build, devices, a matmul)
    tensorboard_jupyter  the tensorboard command, port 6006, the runs folder, the Jupyter kernel
    data               the datasets the lessons load, from labkit.data
    report             the table, the verdict, the JSON report and the exit code
    runner             the command line: gather the facts, run every check, print, exit

Every module needs only the standard library, so the doctor can diagnose an environment in
which nothing is installed yet; `packaging`, `jupyter_client` and `tensorboard` are used when
they are there, and one row says so when they are not.
"""
