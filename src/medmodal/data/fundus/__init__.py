"""Fundus photographs (retinal vessel segmentation, issue 27): data readers and generators."""
