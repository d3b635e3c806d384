"""The series' machinery, which no notebook teaches: getting MNIST safely, run folders, running notebooks.

Layers, each importing only the ones below it:

    runner.py          papermill series, sweeps, command line (python -m lenet5_series prepare|run|sweep)
    publish.py         the website and the handouts of the stored notebooks (make site, make handout)
       |
    lenet5_helpers.py  what the notebooks teach (the module a learner opens)
       |
    mnist.py, runs.py, params.py, threads.py   getting MNIST; run folders and checkpoints;
                                               parameter values; the CPU threads a run may use
       |
    paths.py           where things go; atomic writes
"""
