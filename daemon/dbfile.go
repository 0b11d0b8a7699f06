package daemon

import (
	"errors"
	"fmt"

	"github.com/dialgate/dialgate/store"
)

// openDB opens the database for serve and restore. It never creates one
// (only Init does): a missing, empty or damaged file is refused before
// the kernel is touched, since the firewall an empty whitelist describes
// would lock out every administrator and trunk.
func openDB(path string) (*store.DB, error) {
	db, err := store.Open(path, store.Options{})
	if errors.Is(err, store.ErrNoDatabase) || errors.Is(err, store.ErrDamaged) {
		return nil, fmt.Errorf("%w. The firewall in the kernel was left as it is", err)
	}
	return db, err
}
