"""`redress`: the operator's and auditor's command line (audit, rebuild, verify, dead letters)."""
