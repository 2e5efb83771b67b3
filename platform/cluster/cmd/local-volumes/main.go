// local-volumes is the dynamic provisioner of the single-node cluster's default StorageClass: it
// gives every PersistentVolumeClaim of a class whose provisioner is cloudservice.dev/local-volumes
// a hostPath PersistentVolume in a directory of its own under ROOT (writable by any user, as pods
// run as non-root), and deletes the directory and the volume once the claim is gone (reclaim policy
// Delete). It polls the API every two seconds: a handful of volumes on one node needs no more.
//
// Usage: local-volumes KUBECONFIG ROOT
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	provisioner      = "cloudservice.dev/local-volumes"
	provisionerKey   = "volume.kubernetes.io/storage-provisioner"
	provisionedByKey = "pv.kubernetes.io/provisioned-by"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: local-volumes KUBECONFIG ROOT")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", os.Args[1])
	if err != nil {
		logf("kubeconfig: %v", err)
		os.Exit(1)
	}
	root, err := filepath.Abs(os.Args[2])
	if err == nil {
		err = os.MkdirAll(root, 0o755)
	}
	if err != nil {
		logf("volume root: %v", err)
		os.Exit(1)
	}
	client := kubernetes.NewForConfigOrDie(config)
	logf("provisioning %s volumes under %s", provisioner, root)
	lastErr := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := errors.Join(provision(ctx, client, root), reclaim(ctx, client, root))
		cancel()
		if msg := fmt.Sprint(err); err != nil && msg != lastErr { // an error once, not every round
			logf("%s", msg)
			lastErr = msg
		} else if err == nil && lastErr != "" {
			logf("recovered")
			lastErr = ""
		}
		time.Sleep(2 * time.Second)
	}
}

// provision creates a volume, bound in advance to its claim, for every pending claim of ours.
func provision(ctx context.Context, client kubernetes.Interface, root string) error {
	claims, err := client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	for _, claim := range claims.Items {
		if claim.Spec.VolumeName != "" || claim.Status.Phase != corev1.ClaimPending ||
			claim.Annotations[provisionerKey] != provisioner || claim.Spec.StorageClassName == nil {
			continue
		}
		name := "pvc-" + string(claim.UID)
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o777); err != nil { // not masked by the umask
			return err
		}
		volume := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{provisionedByKey: provisioner}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: claim.Spec.Resources.Requests[corev1.ResourceStorage]},
				AccessModes:                   claim.Spec.AccessModes,
				VolumeMode:                    claim.Spec.VolumeMode,
				StorageClassName:              *claim.Spec.StorageClassName,
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				ClaimRef: &corev1.ObjectReference{
					Kind: "PersistentVolumeClaim", APIVersion: "v1",
					Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID,
				},
				PersistentVolumeSource: corev1.PersistentVolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: dir},
				},
			},
		}
		_, err := client.CoreV1().PersistentVolumes().Create(ctx, volume, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		if err == nil {
			logf("created volume %s for claim %s/%s", name, claim.Namespace, claim.Name)
		}
	}
	return nil
}

// reclaim deletes the directory and the object of every volume of ours whose claim is gone.
func reclaim(ctx context.Context, client kubernetes.Interface, root string) error {
	volumes, err := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("reclaim: %w", err)
	}
	for _, volume := range volumes.Items {
		if volume.Annotations[provisionedByKey] != provisioner || volume.Spec.HostPath == nil ||
			volume.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
			(volume.Status.Phase != corev1.VolumeReleased && volume.Status.Phase != corev1.VolumeFailed) {
			continue
		}
		dir := volume.Spec.HostPath.Path
		if filepath.Dir(dir) != root || !strings.HasPrefix(filepath.Base(dir), "pvc-") {
			logf("volume %s: %s is not one of ours, leaving it alone", volume.Name, dir)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		err := client.CoreV1().PersistentVolumes().Delete(ctx, volume.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		logf("deleted volume %s (%s)", volume.Name, volume.Status.Phase)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}
