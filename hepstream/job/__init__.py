"""One job: read the chunks, run the plugin, write the reduced output, account for it.

:mod:`~hepstream.job.runner` runs a job in this process (:func:`~hepstream.job.runner.run_job`),
:mod:`~hepstream.job.reader` streams its chunks and :mod:`~hepstream.job.writer` its output,
:mod:`~hepstream.job.accounting` fills its report; :mod:`~hepstream.job.processes` runs a job
over worker processes (:mod:`~hepstream.job.workers`: their pure parts);
:mod:`~hepstream.job.signals` turns SIGINT/SIGTERM into a clean stop.
"""
