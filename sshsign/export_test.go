package sshsign

import "context"

// SetBeforeRecord makes RunSign call f between signing and recording.
func SetBeforeRecord(s *Service, f func(context.Context) error) { s.beforeRecord = f }
