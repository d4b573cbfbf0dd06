"""The runtime leaf: what the gateway, the worker and the sinks share, importing none of them.

- ``settings``: environment variables and the resolved ``Endpoints`` (the CLI resolves them);
- ``projects`` and ``restrictions``: the project model, its lookup and its admin queries;
- ``topology``: the model of ``topology.yaml`` and its loader (fields and graph checks only;
  the worker and the CLI add the component checks of stages, sinks and agents).
"""
