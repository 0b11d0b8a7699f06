package store_test

import (
	"path/filepath"
	"testing"

	"github.com/dialgate/dialgate/store"
	"github.com/dialgate/dialgate/store/storetest"
)

// TestConformance holds the bbolt backend to the behaviour every Store
// must have. It lives in package store_test because storetest imports
// store.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}

func openTest(t *testing.T) store.Store {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Create: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
