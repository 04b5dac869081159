package auth

// HomeDir is the home the entry's user is jailed in, as User.Home has it:
// the cleaned home, or the user's name when none is set.
func (e *UserEntry) HomeDir() string { return cleanHome(e.Name, e.Home) }

// Find returns the entry of the user called name, or nil.
func (f *UsersFile) Find(name string) *UserEntry {
	if f == nil {
		return nil
	}
	if i := f.find(name); i >= 0 {
		e := f.entries[i]
		return &e
	}
	return nil
}
