"""The stages: one module each (a config, run(), HELP, plan() for the pipeline), registered in
edgetransfer.registry; a stage never imports another."""
