# The GitHub Action's image. `make install-check` (part of `make test`) replays the COPY and RUN lines below
# in a clean virtualenv, so a file missing from the image or a broken install fails CI here.
FROM python:3.11-slim
WORKDIR /opt/golden-path
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY templates ./templates
RUN pip install --no-cache-dir .
ENTRYPOINT ["golden-path", "action"]
