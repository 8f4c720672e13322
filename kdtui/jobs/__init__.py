"""The job queue: experiments expanded into jobs (``graph``), a detached worker daemon that runs them
(``daemon``), one job's execution (``runner``), and GPU assignment (``gpus``)."""
