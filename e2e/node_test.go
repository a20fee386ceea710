package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
)

// localNodeID is the local runtime's marker derivation (a digest of the
// data dir), restated so the leak checks are independent of the code under
// test.
func localNodeID(dataDir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(dataDir)))
	return hex.EncodeToString(sum[:6])
}
