// Command coredns is CoreDNS with only the plugins the dev cluster's Corefile uses (bind, kubernetes,
// forward, cache, errors, health, ready, log): a smaller build than the full plugin set.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// Keep only the directives compiled in, in CoreDNS' own order.
	keep := map[string]bool{
		"bind": true, "errors": true, "log": true, "health": true, "ready": true,
		"kubernetes": true, "cache": true, "forward": true,
	}
	var directives []string
	for _, d := range dnsserver.Directives {
		if keep[d] {
			directives = append(directives, d)
		}
	}
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
