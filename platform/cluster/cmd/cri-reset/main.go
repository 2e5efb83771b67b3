// cri-reset stops and removes every pod sandbox of a CRI runtime, as `crictl rmp --all --force`
// would: the runtime kills the pods' containers, tears down their networks (CNI DEL, network
// namespaces) and unmounts what it mounted for them. cluster-down.sh runs it before stopping
// containerd, so nothing of the old pods lingers; the kubelet recreates them at the next start.
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
		fmt.Fprintln(os.Stderr, "usage: cri-reset unix:///path/to/cri.sock")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	check("connect", err)
	defer conn.Close()
	client := runtime.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	pods, err := client.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	check("list pod sandboxes", err)
	for _, pod := range pods.Items {
		name := fmt.Sprintf("%s/%s (%.13s)", pod.Metadata.GetNamespace(), pod.Metadata.GetName(), pod.Id)
		_, err := client.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod.Id})
		check("stop pod sandbox "+name, err)
		_, err = client.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod.Id})
		check("remove pod sandbox "+name, err)
		fmt.Println("removed pod sandbox", name)
	}
}

func check(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-reset: %s: %v\n", what, err)
		os.Exit(1)
	}
}
