# The GitHub Action's image. `make install-check` (part of `make test`) replays the COPY and RUN lines of the
# build stage below in a clean directory and virtualenv, so a file missing from the image or a broken install
# fails CI here; it also times that install against a plain `pip install .`.

# Build stage: uv resolves and installs in about a second where pip takes about ten.
FROM python:3.11-slim AS build
WORKDIR /opt/golden-path
RUN pip install --no-cache-dir --disable-pip-version-check "uv>=0.4,<1"
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY templates ./templates
RUN uv venv --quiet --python python3 venv && uv pip install --quiet --no-cache --python venv/bin/python .

# Final stage: the interpreter and the installed venv only (no uv, no sources, no build tools).
FROM python:3.11-slim
COPY --from=build /opt/golden-path/venv /opt/golden-path/venv
ENV PATH=/opt/golden-path/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["golden-path", "action"]
