"""The series' modules other than the helper: the infrastructure no notebook teaches, and the
programs started from a command line. Three layers, each importing only the ones below it
(tests/test_layers.py checks every module):

    programs           started from a command line
      runner.py, __main__.py   papermill series, sweeps (python -m lenet5_series prepare|run|sweep)
      publish.py               the website and the handouts of the stored notebooks (make site, make handout)
      grading.py               the graded assignments (make assignments)
      ddp.py, allreduce.py     the torchrun trainer and the all-reduce demo that notebook 05 shows and
                               runs; ddp.py trains with the helper's pieces
       |
    lenet5_helpers.py  what the notebooks teach (the module a learner opens)
       |
    infrastructure
      mnist.py, runs.py, params.py, threads.py   getting MNIST; run folders and checkpoints;
                                                 parameter values; the CPU threads a run may use
      exercises.py, graphed.py                   the exercises' answer checks; the SGD update a
                                                 CUDA graph can hold
      paths.py                                   where things go; atomic writes
"""
