"""Sequence classification: labelled sets, a classifier head on BERT or a decoder, training and metrics."""
