"""Shared building blocks below the models (contrastive losses' gathers, momentum teachers, ...)."""
