package api

// Routes returns the method and path of every route in s's table, for
// tests that check the OpenAPI document covers them.
func Routes(s *Server) [][2]string {
	var out [][2]string
	for _, rt := range s.table() {
		out = append(out, [2]string{rt.method, rt.path})
	}
	return out
}
