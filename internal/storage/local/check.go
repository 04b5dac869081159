package local

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
)

// CheckWrite creates and removes an empty file in the storage root.
func (b *Backend) CheckWrite(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := ".cloudftpd-check-" + rand.Text()
	f, err := b.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("local: create a file in %s: %w", b.root.Name(), err)
	}
	f.Close()
	if err := b.root.Remove(name); err != nil {
		return fmt.Errorf("local: remove the check file %s: %w", name, err)
	}
	return nil
}
