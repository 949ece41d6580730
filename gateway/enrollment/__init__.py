"""Enrollment of a voice: consent challenges, the spoken consent, reference samples."""
