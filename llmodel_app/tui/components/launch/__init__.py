"""The Launch tab's forms: one widget per job kind, each turning its fields into that kind's job spec."""
