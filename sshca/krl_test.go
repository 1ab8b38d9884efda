package sshca

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/internal/sshtest"

	"golang.org/x/crypto/ssh"
)

// krlSub is one decoded certificate subsection: its type and serials (for a
// range, its first and last serial).
type krlSub struct {
	typ     byte
	serials []uint64
}

// krlCA is one decoded KRL_SECTION_CERTIFICATES.
type krlCA struct {
	ca   []byte
	subs []krlSub
}

// decodeKRL is a strict reader of the subset of PROTOCOL.krl that KRL
// writes, independent of the writer, to check its structure.
func decodeKRL(t *testing.T, b []byte) (version, date uint64, comment string, cas []krlCA) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("decode KRL: "+format, args...)
	}
	u32 := func() uint32 {
		t.Helper()
		if len(b) < 4 {
			fail("short uint32")
		}
		v := binary.BigEndian.Uint32(b)
		b = b[4:]
		return v
	}
	u64 := func(buf *[]byte) uint64 {
		t.Helper()
		if len(*buf) < 8 {
			fail("short uint64")
		}
		v := binary.BigEndian.Uint64(*buf)
		*buf = (*buf)[8:]
		return v
	}
	str := func(buf *[]byte) []byte {
		t.Helper()
		if len(*buf) < 4 {
			fail("short string length")
		}
		n := binary.BigEndian.Uint32(*buf)
		if uint64(len(*buf)-4) < uint64(n) {
			fail("short string")
		}
		s := (*buf)[4 : 4+n]
		*buf = (*buf)[4+n:]
		return s
	}
	if !bytes.HasPrefix(b, []byte("SSHKRL\n\x00")) {
		fail("bad magic %q", b[:min(8, len(b))])
	}
	b = b[8:]
	if v := u32(); v != 1 {
		fail("format version %d", v)
	}
	version = u64(&b)
	date = u64(&b)
	if flags := u64(&b); flags != 0 {
		fail("flags %d", flags)
	}
	if reserved := str(&b); len(reserved) != 0 {
		fail("reserved %q", reserved)
	}
	comment = string(str(&b))
	for len(b) > 0 {
		typ := b[0]
		b = b[1:]
		sect := str(&b)
		if typ != 1 {
			fail("section type %d", typ)
		}
		ca := krlCA{ca: str(&sect)}
		if reserved := str(&sect); len(reserved) != 0 {
			fail("section reserved %q", reserved)
		}
		for len(sect) > 0 {
			sub := krlSub{typ: sect[0]}
			sect = sect[1:]
			data := str(&sect)
			for len(data) > 0 {
				sub.serials = append(sub.serials, u64(&data))
			}
			switch sub.typ {
			case 0x20:
			case 0x21:
				if len(sub.serials) != 2 {
					fail("range with %d numbers", len(sub.serials))
				}
			default:
				fail("subsection type %#x", sub.typ)
			}
			ca.subs = append(ca.subs, sub)
		}
		cas = append(cas, ca)
	}
	return version, date, comment, cas
}

func sshPublicKey(t testing.TB, kind string) ssh.PublicKey {
	t.Helper()
	pub, err := ssh.NewPublicKey(newKey(t, kind).Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestKRLHeader(t *testing.T) {
	t.Parallel()
	krl := &KRL{Version: 7, GeneratedAt: time.Unix(1_900_000_000, 5), Comment: "org x"}
	got, err := krl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("SSHKRL\n\x00" +
		"\x00\x00\x00\x01" + // format version
		"\x00\x00\x00\x00\x00\x00\x00\x07" + // krl_version
		"\x00\x00\x00\x00\x71\x3f\xb3\x00" + // generated_date 1900000000
		"\x00\x00\x00\x00\x00\x00\x00\x00" + // flags
		"\x00\x00\x00\x00" + // reserved
		"\x00\x00\x00\x05org x")
	if !bytes.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestKRLSections(t *testing.T) {
	t.Parallel()
	const (
		list  = 0x20
		rng   = 0x21
		maxU6 = math.MaxUint64
	)
	tests := []struct {
		name    string
		serials []uint64
		want    []krlSub // nil: no section for the CA
	}{
		{"none", nil, nil},
		{"one", []uint64{9}, []krlSub{{list, []uint64{9}}}},
		{"sorted and unique", []uint64{5, 3, 3, 1, 5}, []krlSub{{list, []uint64{1, 3, 5}}}},
		{"pair stays a list", []uint64{8, 7}, []krlSub{{list, []uint64{7, 8}}}},
		{"run becomes a range", []uint64{3, 1, 2}, []krlSub{{rng, []uint64{1, 3}}}},
		{"duplicates inside a run", []uint64{1, 2, 2, 3, 3}, []krlSub{{rng, []uint64{1, 3}}}},
		{
			"mixed, in order",
			[]uint64{23, 1, 2, 3, 4, 10, 12, 13, 20, 21, 22, 40},
			[]krlSub{{rng, []uint64{1, 4}}, {list, []uint64{10, 12, 13}}, {rng, []uint64{20, 23}}, {list, []uint64{40}}},
		},
		{"largest serials", []uint64{maxU6, maxU6 - 1, maxU6 - 2, 1}, []krlSub{{list, []uint64{1}}, {rng, []uint64{maxU6 - 2, maxU6}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := sshPublicKey(t, "ed25519")
			input := slices.Clone(tt.serials)
			krl := &KRL{Version: 1, GeneratedAt: testNow(), Revoked: []RevokedSerials{{CA: ca, Serials: input}}}
			b, err := krl.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(input, tt.serials) {
				t.Errorf("MarshalBinary changed the caller's serials to %v", input)
			}
			version, date, _, cas := decodeKRL(t, b)
			if version != 1 || date != uint64(testNow().Unix()) {
				t.Errorf("version %d date %d", version, date)
			}
			if tt.want == nil {
				if len(cas) != 0 {
					t.Fatalf("got %d CA sections, want none", len(cas))
				}
				return
			}
			if len(cas) != 1 {
				t.Fatalf("got %d CA sections, want 1", len(cas))
			}
			if !bytes.Equal(cas[0].ca, ca.Marshal()) {
				t.Error("section names another CA key")
			}
			if !slices.EqualFunc(cas[0].subs, tt.want, func(a, b krlSub) bool {
				return a.typ == b.typ && slices.Equal(a.serials, b.serials)
			}) {
				t.Errorf("subsections %v, want %v", cas[0].subs, tt.want)
			}
		})
	}
}

func TestKRLMergesCAs(t *testing.T) {
	t.Parallel()
	caA, caB := sshPublicKey(t, "ed25519"), sshPublicKey(t, "ecdsa-p256")
	krl := &KRL{GeneratedAt: testNow(), Revoked: []RevokedSerials{
		{CA: caA, Serials: []uint64{5}},
		{CA: caB, Serials: []uint64{1}},
		{CA: caA, Serials: []uint64{3, 5}},
	}}
	b, err := krl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, cas := decodeKRL(t, b)
	if len(cas) != 2 {
		t.Fatalf("got %d CA sections, want 2", len(cas))
	}
	if !bytes.Equal(cas[0].ca, caA.Marshal()) || !bytes.Equal(cas[1].ca, caB.Marshal()) {
		t.Error("CA sections out of order")
	}
	if len(cas[0].subs) != 1 || !slices.Equal(cas[0].subs[0].serials, []uint64{3, 5}) {
		t.Errorf("CA A: %v, want list 3 5", cas[0].subs)
	}
}

func TestKRLErrors(t *testing.T) {
	t.Parallel()
	ca := sshPublicKey(t, "ed25519")
	tests := []struct {
		name   string
		krl    KRL
		errHas string
	}{
		{"serial zero", KRL{GeneratedAt: testNow(), Revoked: []RevokedSerials{{CA: ca, Serials: []uint64{1, 0}}}}, "serial 0"},
		{"no CA key", KRL{GeneratedAt: testNow(), Revoked: []RevokedSerials{{Serials: []uint64{1}}}}, "no CA key"},
		{"date before 1970", KRL{GeneratedAt: time.Time{}}, "1970"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := tt.krl.MarshalBinary()
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("got %d bytes, error %v; want an error containing %q", len(b), err, tt.errHas)
			}
		})
	}
}

// TestKRLReadByOpenSSH checks that ssh-keygen parses the KRL into the same
// revocations (ssh-keygen -Ql dumps a KRL).
func TestKRLReadByOpenSSH(t *testing.T) {
	t.Parallel()
	caA, caB := sshPublicKey(t, "ed25519"), sshPublicKey(t, "rsa-3072")
	krl := &KRL{
		Version:     42,
		GeneratedAt: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC),
		Comment:     "shardform org 1",
		Revoked: []RevokedSerials{
			{CA: caA, Serials: []uint64{9, 1, 2, 3, 4, 7}},
			{CA: caB, Serials: []uint64{100}},
		},
	}
	b, err := krl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "krl", b)
	out, code := sshtest.Run(t, "ssh-keygen", "-Q", "-l", "-f", path)
	if code != 0 {
		t.Fatalf("ssh-keygen -Ql exit %d: %s", code, out)
	}
	want := fmt.Sprintf(`# KRL version 42
# Generated at 20310506T070809
# Comment: shardform org 1


# CA key %s %s
serial: 1-4
serial: 7
serial: 9

# CA key %s %s
serial: 100
`, caA.Type(), ssh.FingerprintSHA256(caA), caB.Type(), ssh.FingerprintSHA256(caB))
	if strings.TrimSpace(out) != strings.TrimSpace(want) {
		t.Errorf("ssh-keygen -Ql:\n%s\nwant:\n%s", out, want)
	}

	empty, err := (&KRL{GeneratedAt: krl.GeneratedAt}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, code = sshtest.Run(t, "ssh-keygen", "-Q", "-l", "-f", writeFile(t, t.TempDir(), "empty", empty))
	if code != 0 || !strings.Contains(out, "# KRL version 0") {
		t.Errorf("empty KRL: ssh-keygen -Ql exit %d: %s", code, out)
	}
}

// TestKRLIdentity: the same list made at two times has one identity; a new
// version of the list has another.
func TestKRLIdentity(t *testing.T) {
	t.Parallel()
	marshal := func(version uint64, at time.Time) []byte {
		t.Helper()
		b, err := (&KRL{Version: version, GeneratedAt: at, Comment: "org x"}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := marshal(3, time.Unix(1_900_000_000, 0)), marshal(3, time.Unix(1_900_000_060, 0))
	if bytes.Equal(a, b) || !bytes.Equal(KRLIdentity(a), KRLIdentity(b)) {
		t.Error("the same list at two times: different identities")
	}
	if bytes.Equal(KRLIdentity(a), KRLIdentity(marshal(4, time.Unix(1_900_000_000, 0)))) {
		t.Error("a new version has the same identity")
	}
	if !bytes.Equal(KRLIdentity(a[:4]), a[:4]) {
		t.Error("a short input is not kept as it is")
	}
}
