package dashboard

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"testing"
)

// TestAssetsSize: everything the dashboard embeds (files and templates)
// stays under 300 KB gzip-compressed.
func TestAssetsSize(t *testing.T) {
	t.Parallel()
	var raw, packed int
	for _, fsys := range []fs.FS{assetFS, templateFS} {
		err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = w.Write(b)
			_ = w.Close()
			raw += len(b)
			packed += buf.Len()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("embedded assets: %d bytes, %d gzip-compressed", raw, packed)
	if packed > 300_000 {
		t.Errorf("embedded assets are %d bytes compressed, over 300 KB", packed)
	}
}
