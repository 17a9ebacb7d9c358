"""Estimators: interpolated modified Kneser-Ney (lmplz's), and the count-based MLE / add-k / stupid backoff."""
