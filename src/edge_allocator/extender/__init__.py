"""The scheduler extender: kube-scheduler asks it to filter and score nodes for EdgeTask pods.

``app`` (HTTP) -> ``service`` (decisions) -> policy, over snapshots from ``cache`` (filled in
the background by ``live``); decisions go to ``decisions`` (memory + pod annotations).
"""
