"""What users do with environments, one module per verb; each works on any target."""
