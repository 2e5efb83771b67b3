// cri-ready succeeds once a CRI runtime serves the kubelet: containerd answers on its socket before
// its CRI plugin has recovered its state, and until then every CRI call fails with "server is not
// initialized yet", which makes a kubelet started in that window exit at once. cluster-up.sh polls
// it before starting the kubelet.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cri-ready unix:///path/to/cri.sock")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	check("connect", err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	status, err := runtime.NewRuntimeServiceClient(conn).Status(ctx, &runtime.StatusRequest{})
	check("status", err)
	for _, condition := range status.GetStatus().GetConditions() {
		if condition.Type == runtime.RuntimeReady && !condition.Status {
			check("status", fmt.Errorf("runtime not ready: %s %s", condition.Reason, condition.Message))
		}
	}
	fmt.Println("CRI runtime ready")
}

func check(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-ready: %s: %v\n", what, err)
		os.Exit(1)
	}
}
