"""What a version takes and answers: its signature, and request rows checked against it."""
