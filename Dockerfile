# LLModel on CPU: the CLI, the engine and the model server. Workspaces live on the /workspaces volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LLMODEL_WORKSPACE=/workspaces/default

# libgomp: the OpenMP runtime numba's parallel decoding kernels run on.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# CPU-only torch first, from PyTorch's CPU index, so the package install below never pulls a CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /opt/llmodel
COPY pyproject.toml README.md constraints.txt ./
COPY engine ./engine
COPY llmodel_app ./llmodel_app
RUN pip install . -c constraints.txt \
    && useradd --create-home --uid 1000 llmodel \
    && mkdir -p /workspaces \
    && chown llmodel:llmodel /workspaces

USER llmodel
WORKDIR /home/llmodel
VOLUME ["/workspaces"]
EXPOSE 8000

# /health answers 503 while the model loads and 200 once it serves.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)" || exit 1

ENTRYPOINT ["llmodel"]
# Serving beyond loopback needs an API key: pass LLMODEL_API_KEY in the environment.
CMD ["serve", "latest", "--host", "0.0.0.0", "--port", "8000"]
