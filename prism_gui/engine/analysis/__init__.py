"""Analysis: precision, recall, density and coverage in the teacher's features."""
