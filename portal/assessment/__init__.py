"""Back office: opened reports and their public status (queue, assessment and trace to come)."""
