"""How close a variant's answers are to a reference and to the truth: shared by the variant report, optimize,
drift references and shadow routing."""
