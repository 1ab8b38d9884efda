package bench

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/shardform/shardform/sshca"
)

// BenchmarkSSHSigner is the signer alone, next to OpenSSH: each iteration
// certifies the same 256 ed25519 user keys with an ed25519 CA
//
//   - with sshca.Authority.Sign on one goroutine (signatures per second on
//     one core: validation, policy, certificate build and signature),
//   - with sshca on GOMAXPROCS goroutines (all cores),
//   - with one `ssh-keygen -s ca -I id -n root -V +1h key1.pub … key256.pub`
//     process (ssh-keygen signs on one core),
//   - with one ssh-keygen process per key, the way a service shelling out
//     to it would sign.
func BenchmarkSSHSigner(b *testing.B) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		b.Skip("ssh-keygen not found: install openssh-client")
	}
	const keys = 256
	dir := b.TempDir()
	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(caPriv, "bench CA")
	if err != nil {
		b.Fatal(err)
	}
	caPath := filepath.Join(dir, "ca")
	if err := os.WriteFile(caPath, pem.EncodeToMemory(block), 0o600); err != nil {
		b.Fatal(err)
	}
	auth, err := sshca.NewAuthority(caPriv, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	pubs := make([]string, keys)
	paths := make([]string, keys)
	for i := range keys {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		sshPub, err := ssh.NewPublicKey(pub)
		if err != nil {
			b.Fatal(err)
		}
		pubs[i] = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
		paths[i] = filepath.Join(dir, fmt.Sprintf("user%03d.pub", i))
		if err := os.WriteFile(paths[i], []byte(pubs[i]+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	policy := sshca.DefaultPolicy()
	sign := func(i int) {
		_, err := auth.Sign(policy, sshca.Request{PublicKey: pubs[i], Principals: []string{"root"},
			User: "bench@example.com", OrganizationID: "bench", Serial: uint64(i + 1)})
		if err != nil {
			b.Error(err)
		}
	}
	keygenArgs := append([]string{"-q", "-s", caPath, "-I", "bench", "-n", "root", "-V", "+1h"}, paths...)
	procs := runtime.GOMAXPROCS(0)

	var oneCore, allCores, keygenBatch, keygenEach time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		for i := range keys {
			sign(i)
		}
		oneCore += time.Since(t0)

		t0 = time.Now()
		var wg sync.WaitGroup
		for w := range procs {
			wg.Go(func() {
				for i := w; i < keys; i += procs {
					sign(i)
				}
			})
		}
		wg.Wait()
		allCores += time.Since(t0)

		t0 = time.Now()
		if out, err := exec.Command(keygen, keygenArgs...).CombinedOutput(); err != nil {
			b.Fatalf("ssh-keygen -s: %v\n%s", err, out)
		}
		keygenBatch += time.Since(t0)

		t0 = time.Now()
		for _, p := range paths {
			if out, err := exec.Command(keygen, "-q", "-s", caPath, "-I", "bench", "-n", "root", "-V", "+1h", p).CombinedOutput(); err != nil {
				b.Fatalf("ssh-keygen -s: %v\n%s", err, out)
			}
		}
		keygenEach += time.Since(t0)
	}
	b.StopTimer()
	n := float64(b.N * keys)
	b.ReportMetric(n/oneCore.Seconds(), "sshca-sigs/s/core")
	b.ReportMetric(n/allCores.Seconds(), "sshca-sigs/s")
	b.ReportMetric(n/keygenBatch.Seconds(), "ssh-keygen-sigs/s")
	b.ReportMetric(n/keygenEach.Seconds(), "ssh-keygen-per-process-sigs/s")
	b.Logf("%d keys × %d iterations; sshca on %d cores", keys, b.N, procs)
}
