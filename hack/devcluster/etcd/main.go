// Command etcd runs the upstream etcd server; this wrapper exists because etcd's own module
// cannot be `go install`ed (relative replace directives), while a dependent module can build it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
