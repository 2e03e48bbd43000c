"""The EdgeTask operator: turns EdgeTasks into placed pods and reports where they went and why.

Pure parts (``views``, ``topology``, ``podspec``, ``planner``, ``decisions``) decide; the kopf
wiring (``handlers``) observes the cluster and carries the decisions out over the API. The
operator never imports the extender: they meet on pod annotations and the extender's HTTP API.
"""
