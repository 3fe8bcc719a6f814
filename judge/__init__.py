"""The judge: an honest verdict on a candidate simulator against the reference, and evidence a repairer can act on."""
