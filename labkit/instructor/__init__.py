"""labkit.instructor: the tools an instructor, or `scripts/lab.py`, runs around the activities.

    board      `lab.py tensorboard`: TensorBoard on a folder of runs, ready for a demo
    catalog    `lab.py runs`: the table of runs, cleaning them up, exporting them
    slimming   `lab.py runs --clean`'s offer to slim old model files (labkit.slim_models slims)
    export     the run archives that `lab.py runs --export` writes and `lab.py collect` reads
    collect    `lab.py collect`: a class's archives merged into one logdir
    demo_runs  `lab.py demo-runs`: regenerate the recorded runs in demo_runs/
    workers    `lab.py workers`: one training job on N local workers

Students' activities never import this package; tests/test_toolkit_shape.py keeps it that way.
"""
