// Cluster DNS for the cluster tier's node: CoreDNS with only the plugins the
// tier's Corefile uses (tools/scripts/kube-node.sh). The stock build links
// every cloud provider's SDK; this one answers Service and Pod names from
// the API server and nothing else, since no query may leave the machine.
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
