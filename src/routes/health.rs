use worker::Response;

pub fn get() -> worker::Result<Response> {
    let response = Response::ok("ok")?;
    response.headers().set("cache-control", "no-store")?;
    Ok(response)
}
