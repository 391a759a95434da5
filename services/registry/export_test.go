package registry

// Moves for the tests in package registry_test that make them on a store
// directly, to leave a connection as a registry that died halfway would.
var BeginDisconnect = beginDisconnect
