// The pod sandbox ("pause") process of the dev cluster's real node, built locally (no registry).
module edge-allocator.io/hack/devcluster/pause

go 1.24.0
