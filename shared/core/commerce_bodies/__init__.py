"""What is sent to Commerce for an event: the create body (create), the PATCH of what changed (patch),
and the field groups that narrow both when an older event only carries some groups (groups)."""
