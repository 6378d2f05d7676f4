"""The agent: the step loop, the three model agents, tasks, the step record, a run's state
and its events. It drives the layers below (model, human, tools, store) and knows nothing of
the terminal."""
