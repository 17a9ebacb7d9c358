"""(6.3) Prompting: techniques as data, rendered through the model's own chat template, scored on tasks."""
