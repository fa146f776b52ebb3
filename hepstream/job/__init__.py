"""One job: read the chunks, run the plugin, write the reduced output, account for it; worker
processes; clean stop on signals."""
